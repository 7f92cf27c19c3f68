"""Training for the latents stage: NLB-style splits, coordinated dropout, KL warm-up,
checkpoints that let an interrupted run resume exactly, and evaluation.

Splits follow the Neural Latents Benchmark: the model sees held-in neurons over the held-in bins;
it predicts every neuron over the held-in plus forward-prediction bins. Training trials supervise
all of it; evaluation trials give only their held-in inputs.

Coordinated dropout (Keshtkaran & Pandarinath 2019): each step a random subset of the held-in
input entries is zeroed (the rest scaled by 1/(1-p)) and the reconstruction loss on held-in
entries counts only the dropped ones, so the model cannot learn to copy a spike from input to
output. Held-out neurons and forward bins are never inputs and always count.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neurodag.config import defaults

log = logging.getLogger(__name__)


@dataclass
class TrialData:
    """Counts ``(trial, time, neuron)`` with the NLB split of neurons, bins and trials."""

    counts: np.ndarray
    heldin: np.ndarray  # neuron indices given to the encoder
    heldout: np.ndarray  # neuron indices only predicted
    n_heldin_time: int  # bins before the forward-prediction window
    train: np.ndarray  # trial indices
    valid: np.ndarray

    @property
    def n_time(self) -> int:
        return self.counts.shape[1]

    @property
    def n_neurons(self) -> int:
        return self.counts.shape[2]

    def inputs(self, trials: np.ndarray) -> np.ndarray:
        return self.counts[trials][:, : self.n_heldin_time][:, :, self.heldin]


def split_trials(
    counts: np.ndarray,
    *,
    heldout_fraction: float,
    forward_bins: int,
    valid_fraction: float,
    seed: int,
) -> TrialData:
    """Random held-out neurons and validation trials (seeded); the last bins are forward bins."""
    rng = np.random.default_rng(seed)
    n_trials, n_time, n_neurons = counts.shape
    n_heldout = int(round(heldout_fraction * n_neurons))
    order = rng.permutation(n_neurons)
    trials = rng.permutation(n_trials)
    n_valid = max(1, int(round(valid_fraction * n_trials)))
    if forward_bins >= n_time:
        raise ValueError(f"forward_bins={forward_bins} leaves no held-in bins of {n_time}")
    return TrialData(
        counts=np.asarray(counts, dtype=np.float32),
        heldin=np.sort(order[n_heldout:]),
        heldout=np.sort(order[:n_heldout]),
        n_heldin_time=n_time - forward_bins,
        train=np.sort(trials[n_valid:]),
        valid=np.sort(trials[:n_valid]),
    )


_CONFIG = defaults("stages.latents")  # the schema is the one source of defaults


@dataclass
class TrainSettings:
    """Training settings: the latents stage's config keys, defaults from the schema."""

    steps: int = _CONFIG["steps"]
    batch_size: int = _CONFIG["batch_size"]
    learning_rate: float = _CONFIG["learning_rate"]
    warmup_steps: int = _CONFIG["warmup_steps"]
    weight_decay: float = _CONFIG["weight_decay"]
    kl_weight: float = _CONFIG["kl_weight"]
    kl_warmup_steps: int = _CONFIG["kl_warmup_steps"]
    coordinated_dropout: float = _CONFIG["coordinated_dropout"]
    checkpoint_every: int = _CONFIG["checkpoint_every"]
    log_every: int = _CONFIG["log_every"]
    time_limit_s: float | None = _CONFIG["time_limit_s"]
    seed: int = _CONFIG["seed"]


def kl_weight_at(step: int, settings: TrainSettings) -> float:
    """Linear KL warm-up from 0 to ``kl_weight`` over ``kl_warmup_steps``."""
    if settings.kl_warmup_steps <= 0:
        return settings.kl_weight
    return settings.kl_weight * min(1.0, step / settings.kl_warmup_steps)


def learning_rate_factor(step: int, settings: TrainSettings) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``steps``."""
    warmup = min(1.0, (step + 1) / settings.warmup_steps) if settings.warmup_steps > 0 else 1.0
    return warmup * 0.5 * (1 + np.cos(np.pi * min(1.0, step / max(1, settings.steps))))


def poisson_nll(log_rates: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per-bin Poisson negative log-likelihood up to the log k! constant."""
    return torch.exp(log_rates) - counts * log_rates


def training_loss(model, data: TrialData, batch: torch.Tensor, cd_rate: float, kl_scale: float):
    """Negative ELBO per trial with coordinated dropout, and its parts."""
    t_in, heldin = data.n_heldin_time, torch.as_tensor(data.heldin, device=batch.device)
    inputs = batch[:, :t_in][:, :, heldin]
    loss_mask = torch.ones_like(batch)
    if cd_rate > 0:
        keep = (torch.rand_like(inputs) >= cd_rate).float()
        inputs = inputs * keep / (1 - cd_rate)
        held_in_block = loss_mask[:, :t_in][:, :, heldin]
        loss_mask[:, :t_in, heldin] = held_in_block * (1 - keep)
        # Reweight so the expected per-trial reconstruction term matches the full likelihood.
        loss_mask[:, :t_in, heldin] /= cd_rate
    log_rates, kl, _ = model(inputs, sample=True)
    reconstruction = (poisson_nll(log_rates, batch) * loss_mask).sum(dim=(1, 2))
    loss = (reconstruction + kl_scale * kl).mean()
    return loss, reconstruction.mean().item(), kl.mean().item()


def fingerprint(**parts) -> str:
    """Identity of a training run, so a checkpoint from other data or settings is never resumed."""
    h = hashlib.sha256()
    for key in sorted(parts):
        value = parts[key]
        if isinstance(value, np.ndarray):
            h.update(key.encode() + value.tobytes())
        else:
            h.update(key.encode() + json.dumps(value, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: an interrupt never leaves half a checkpoint


def train(
    model: torch.nn.Module,
    data: TrialData,
    settings: TrainSettings,
    *,
    device: torch.device | str = "cpu",
    checkpoint: str | Path | None = None,
    run_id: str = "",
    callback: Callable[[int, torch.nn.Module], bool] | None = None,
    callback_every: int = 100,
    name: str = "model",
) -> dict:
    """Train ``model``; resume from ``checkpoint`` when it holds the same ``run_id``.

    Batches come from a generator seeded by (seed, step), and the torch RNG state is saved, so an
    interrupted and resumed run draws exactly the batches and noise an uninterrupted one would.
    ``callback(step, model) -> stop`` runs every ``callback_every`` steps (evaluation).
    Returns a summary (steps done, wall time of this call, steps per second).
    """
    device = torch.device(device)
    model.to(device)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: learning_rate_factor(s, settings)
    )
    counts = torch.as_tensor(data.counts[data.train], device=device)
    step = 0
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("run_id") == run_id:
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            schedule.load_state_dict(state["schedule"])
            torch.set_rng_state(state["torch_rng"])
            if device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"])
            step = state["step"]
            log.info("%s: resumed from %s at step %d", name, checkpoint, step)
        else:
            log.info("%s: ignoring checkpoint %s from another run", name, checkpoint)
    else:
        torch.manual_seed(settings.seed)

    def save():
        if checkpoint:
            _save_checkpoint(
                checkpoint,
                {
                    "run_id": run_id,
                    "step": step,
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "schedule": schedule.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                },
            )

    started = time.perf_counter()
    first_step = step
    n_train = counts.shape[0]
    batch_size = min(settings.batch_size, n_train)
    model.train()
    while step < settings.steps:
        picker = np.random.default_rng([settings.seed, step])
        batch = counts[torch.as_tensor(picker.choice(n_train, batch_size, replace=False))]
        loss, reconstruction, kl = training_loss(
            model, data, batch, settings.coordinated_dropout, kl_weight_at(step, settings)
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 200.0)
        optimiser.step()
        schedule.step()
        step += 1
        elapsed = time.perf_counter() - started
        if step % settings.log_every == 0 or step == settings.steps:
            log.info(
                "%s: step %d/%d loss %.2f (recon %.2f, kl %.2f) %.1f steps/s",
                name,
                step,
                settings.steps,
                loss.item(),
                reconstruction,
                kl,
                (step - first_step) / elapsed,
            )
        if checkpoint and step % settings.checkpoint_every == 0:
            save()
        if callback and step % callback_every == 0:
            model.eval()
            stop = callback(step, model)
            model.train()
            if stop:
                break
        if settings.time_limit_s is not None and elapsed >= settings.time_limit_s:
            log.info("%s: time limit %.0f s reached at step %d", name, settings.time_limit_s, step)
            break
    save()
    model.eval()
    elapsed = time.perf_counter() - started
    return {
        "steps": step,
        "steps_this_run": step - first_step,
        "wall_s": elapsed,
        "steps_per_s": (step - first_step) / elapsed if elapsed > 0 else float("nan"),
    }


@torch.no_grad()
def infer(
    model: torch.nn.Module,
    data: TrialData,
    trials: np.ndarray,
    device="cpu",
    *,
    posterior_samples: int,
    seed: int,
    trials_per_pass: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Rates (expected counts per bin, ``(trial, time, neuron)``) and latents.

    The latent is the posterior-mean path (mean initial condition, noise-free dynamics). With
    ``posterior_samples`` K > 0 the rates are the posterior predictive mean, averaged over K
    draws of the initial condition and the latent noise, as LFADS reports its rates; with K = 0
    they are the rates of the posterior-mean path. Both are deterministic: the draws come from a
    generator seeded by ``seed``, without touching the global torch RNG.
    """
    model.eval()
    rates, latents = [], []
    for start in range(0, len(trials), trials_per_pass):
        chunk = torch.as_tensor(
            data.inputs(trials[start : start + trials_per_pass]), device=device
        )
        log_rates, _, latent = model(chunk, sample=False)
        latents.append(latent.cpu().numpy())
        if posterior_samples > 0:
            devices = [device] if torch.device(device).type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed + start)
                draws = torch.stack(
                    [torch.exp(model(chunk, sample=True)[0]) for _ in range(posterior_samples)]
                )
            rates.append(draws.mean(0).cpu().numpy())
        else:
            rates.append(torch.exp(log_rates).cpu().numpy())
    return np.concatenate(rates), np.concatenate(latents)
