"""GPU steps: the torch parts of the latents and mds stages on ``cpu`` and on a device, compared.

On the default session's data (``config/config.yaml``'s ``allen`` dataset, simulated with
``neurodag.simulate.allen`` and ingested with ``neurodag.ingest_allen``, exactly as the workflow
does), for a fixed number of optimiser steps on each device:

1. latents: LangevinFlow training (``neurodag.latents.train.train``, the stage's model and
   settings, ``stages.latents``), Pei et al. 2021 split; steps/s of the timed run, then co-bps of
   the posterior-mean rates on the validation trials;
2. mds model: the response model's training (``neurodag.mds.model.train_model``, Burg et al.
   2024), whole epochs, no early stop;
3. mds optimisation: one ``MDSClustering.optimise`` (Adam on one stimulus per cluster) of the
   cpu-trained model, from k-means labels and the seeded start stimuli.

The same-result checks, each with its tolerance (all float32, TF32 switched off on the GPU so that
both devices compute in full float32; the stages themselves run with torch's defaults):

- latents forward/gradient at the initial weights (posterior-mean path, eval mode): largest log-rate
  difference <= 1e-4 and relative gradient difference (L2) <= 1e-3;
- latents trajectory: a short run (``--check-steps``, 20) with dropout 0 and every random draw
  (``torch.randn_like``/``rand_like``: initial-condition and Langevin noise, coordinated dropout)
  made on the cpu in the same order, so that both devices see the same numbers; largest validation
  log-rate difference after it <= 1e-2. Adam amplifies float error: on the cpu, initial weights
  perturbed by 1e-7 (relative, about one float32 ulp) end 1.2e-4 apart after 10 steps and 1e-3
  after 30, so the limit leaves a factor of 10 or more for a GPU's different rounding, while a
  wrong kernel or unshared draws move log rates by tenths. The timed run draws on the device, as
  the stage does, so its co-bps is reported, not compared;
- mds model: predicted responses to all images correlate >= 0.9999 between devices and the median
  held-out correlation differs by <= 1e-3 (initial weights perturbed by 1e-6 on the cpu: 0.9999999
  and 5e-8 after 300 steps);
- mds optimisation: objective differs by <= 1e-4 nats and the stimuli correlate >= 0.9999 (the
  models of the 1e-6 perturbation: 1.4e-6 nats, correlation 1.0).

With ``--device cpu`` (or no GPU) the device run is a second cpu run with one thread against the
reference's all threads, which exercises the same checks (the test suite's slow tier runs this).

    python benchmarks/gpu.py [--device auto|cpu|cuda] [--steps 300] [--check-steps 20]

Exits 1 when a check fails. Problem sizes and steps/s go to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

TOLERANCES = {
    "latents_forward_max_abs_log_rate": 1e-4,
    "latents_gradient_rel_l2": 1e-3,
    "latents_trajectory_max_abs_log_rate": 1e-2,
    "mds_model_prediction_corr_min": 0.9999,
    "mds_model_median_test_corr_abs": 1e-3,
    "mds_optimise_objective_abs": 1e-4,
    "mds_optimise_stimulus_corr_min": 0.9999,
}


# -- data ------------------------------------------------------------------------------------------


def default_session(workdir: Path) -> tuple[dict, dict[str, Path]]:
    """Simulate and ingest the default ``allen`` session; the config and the two ingest files."""
    from neurodag.config import load_config
    from neurodag.ingest_allen import ingest_session
    from neurodag.io.netcdf import write_dataset
    from neurodag.simulate.allen import simulate, with_images_in, write_session

    config = load_config([REPO / "config" / "config.yaml"])
    spec = with_images_in(config["datasets"]["allen"], workdir)
    nwb, _ = write_session(simulate(spec["simulate"]), workdir, parameters={"dataset": spec})
    outputs = ingest_session(nwb, spec, config["stages"]["ingest"]["allen"])
    wanted = {
        "latents": config["stages"]["latents"]["stimulus"],
        "mds": config["stages"]["mds"]["stimulus"],
    }
    paths = {
        stage: write_dataset(outputs[name], workdir / f"{name}.nc", stage="ingest")
        for stage, name in wanted.items()
    }
    return config, paths


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def threads(n: int | None):
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def draws_on_cpu(seed: int):
    """``torch.randn_like``/``rand_like`` drawn from one cpu generator, then moved: both devices
    see the same numbers in the same order."""
    generator = torch.Generator().manual_seed(seed)
    saved = torch.randn_like, torch.rand_like

    def make(draw):
        def like(tensor, **kwargs):
            dtype = kwargs.get("dtype") or tensor.dtype
            return draw(tensor.shape, generator=generator, dtype=dtype).to(tensor.device)

        return like

    torch.randn_like, torch.rand_like = make(torch.randn), make(torch.rand)
    try:
        yield
    finally:
        torch.randn_like, torch.rand_like = saved


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    return float(a @ b / max(np.sqrt((a @ a) * (b @ b)), 1e-30))


# -- latents ---------------------------------------------------------------------------------------


class Latents:
    def __init__(self, path: Path, params: dict):
        from neurodag.latents.stage import read_responses
        from neurodag.latents.train import split_trials

        _, counts, _ = read_responses(path, params["regions"])
        self.params = params
        self.data = split_trials(
            counts,
            heldout_fraction=params["heldout_fraction"],
            forward_bins=params["forward_bins"],
            valid_fraction=params["validation_fraction"],
            seed=params["seed"],
        )

    def model(self, **overrides):
        from neurodag.latents.stage import build_model

        torch.manual_seed(self.params["seed"])  # same initial weights on every device
        data = self.data
        return build_model(
            {**self.params, **overrides}, len(data.heldin), data.n_neurons, data.n_time
        )

    def settings(self, steps: int):
        from neurodag.latents.train import TrainSettings

        names = {f.name for f in fields(TrainSettings)}
        values = {k: v for k, v in self.params.items() if k in names}
        return TrainSettings(**{**values, "steps": steps, "log_every": max(steps, 1)})

    def size(self) -> str:
        d = self.data
        return (
            f"{d.counts.shape[0]} trials ({len(d.train)} train) x {d.n_time} bins x "
            f"{d.n_neurons} neurons ({len(d.heldout)} held out), "
            f"batch {self.params['batch_size']}, {n_parameters(self.model())} parameters"
        )

    def timed(self, device: torch.device, steps: int) -> dict:
        from neurodag.latents.metrics import bits_per_spike
        from neurodag.latents.train import infer, train

        model = self.model()
        summary = train(model, self.data, self.settings(steps), device=device, name="latents")
        rates, _ = infer(
            model, self.data, self.data.valid, device, posterior_samples=0, seed=self.params["seed"]
        )
        d = self.data
        t_in = d.n_heldin_time
        co_bps = bits_per_spike(
            rates[:, :t_in][:, :, d.heldout], d.counts[d.valid, :t_in][:, :, d.heldout]
        )
        return {"steps_per_s": summary["steps_per_s"], "co_bps": co_bps}

    def forward_and_gradient(self, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
        from neurodag.latents.train import poisson_nll

        model = self.model().to(device).eval()
        batch = torch.as_tensor(self.data.counts[self.data.train[:64]], device=device)
        heldin = torch.as_tensor(self.data.heldin, device=device)
        inputs = batch[:, : self.data.n_heldin_time][:, :, heldin]
        log_rates, kl, _ = model(inputs, sample=False)
        loss = poisson_nll(log_rates, batch).sum(dim=(1, 2)).mean() + kl.mean()
        gradient = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
        flat = torch.cat([g.reshape(-1) for g in gradient])
        return log_rates.detach().cpu().numpy(), flat.cpu().numpy()

    def trajectory(self, device: torch.device, steps: int) -> np.ndarray:
        from neurodag.latents.train import infer, train

        model = self.model(dropout=0.0)
        with draws_on_cpu(self.params["seed"]):
            train(model, self.data, self.settings(steps), device=device, name="latents check")
        rates, _ = infer(
            model, self.data, self.data.valid, device, posterior_samples=0, seed=self.params["seed"]
        )
        return np.log(rates)


# -- mds -------------------------------------------------------------------------------------------


class MDS:
    def __init__(self, path: Path, params: dict):
        from neurodag.mds.stage import _window_length, downsample, load_responses

        images, responses, _, _, _ = load_responses([path], params)
        rates = responses.mean(axis=0) / _window_length(params, path)
        self.responses = responses[:, rates >= params["min_rate_hz"]]
        pixels = downsample(images, params["max_image_size"])
        self.images = (pixels - pixels.mean()) / max(pixels.std(), 1e-12)
        self.params = params

    def epochs(self, steps: int) -> tuple[int, int]:
        """Whole epochs for at least ``steps`` batches, and the batches they make."""
        from neurodag.mds.model import split_frames

        model = self.params["model"]
        train, _, _ = split_frames(
            len(self.images), model["validation_fraction"], model["test_fraction"], 0
        )
        per_epoch = math.ceil(len(train) / model["batch_size"])
        epochs = max(1, math.ceil(steps / per_epoch))
        return epochs, epochs * per_epoch

    def size(self, k: int) -> str:
        n_frames, h, w = self.images.shape
        return (
            f"{n_frames} images of {h} x {w} px, {self.responses.shape[1]} neurons, "
            f"batch {self.params['model']['batch_size']}; MDS of {k} clusters x {h * w} px"
        )

    def train(self, device: torch.device, steps: int):
        from neurodag.mds.model import train_model

        epochs, batches = self.epochs(steps)
        options = {**self.params["model"], "max_epochs": epochs, "patience": epochs + 1}
        synchronise(device)
        started = time.perf_counter()
        trained = train_model(
            self.images, self.responses, seed=self.params["seed"], device=device, **options
        )
        synchronise(device)
        seconds = time.perf_counter() - started
        with torch.no_grad():
            x = torch.as_tensor(self.images, dtype=torch.float32, device=device)[:, None]
            predicted = trained.model(x).cpu().numpy()
        return trained, {
            "steps_per_s": batches / seconds,
            "steps": batches,
            "predicted": predicted,
            "median_test_corr": float(np.median(trained.test_correlation)),
        }

    def clustering(self, trained, device: torch.device, steps: int):
        from neurodag.mds.clustering import MDSClustering

        options = dict(self.params["clustering"])
        options.pop("initial_clusters")
        options.pop("min_correlation")
        options["steps"] = steps
        centred = trained.model.centred(self.images.shape[1:]).to(device)
        return MDSClustering(
            centred,
            self.images[trained.train_frames],
            tau=self.params["tau"],
            seed=self.params["seed"],
            device=device,
            **options,
        )

    def optimise(self, trained, device: torch.device, steps: int) -> dict:
        from neurodag.mds.clustering import kmeans, relabel

        clustering = self.clustering(trained, device, steps)
        k = self.params["clustering"]["initial_clusters"]
        labels = relabel(kmeans(clustering.profiles, k, seed=self.params["seed"]))
        stimuli = clustering.random_stimuli(int(labels.max()) + 1)
        synchronise(device)
        started = time.perf_counter()
        result, objective = clustering.optimise(labels, stimuli)
        synchronise(device)
        seconds = time.perf_counter() - started
        return {
            "steps_per_s": steps / seconds,
            "objective": objective,
            "stimuli": result.cpu().numpy(),
            "k": int(labels.max()) + 1,
        }


# -- main ------------------------------------------------------------------------------------------


def check(name: str, value: float, passed: bool, failures: list[str], limit: float) -> None:
    print(f"  check {name}: {value:.3g} (limit {limit:g}) {'ok' if passed else 'FAILED'}")
    if not passed:
        failures.append(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per part")
    parser.add_argument("--check-steps", type=int, default=20, help="latents trajectory check")
    parser.add_argument("--threads", type=int, default=None, help="reference cpu threads")
    parser.add_argument("--workdir", type=Path, default=None, help="for the simulated session")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    # Full float32 on both devices, so the comparison is of the same arithmetic.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # On cpu the device run is a second cpu run with one thread (another summation order).
    device_threads = None if use_cuda else 1
    label = torch.cuda.get_device_name(device) if use_cuda else "cpu, 1 thread"
    print(
        f"torch {torch.__version__}; reference cpu ({torch.get_num_threads()} threads), "
        f"device {device} ({label}); {args.steps} steps per part"
    )

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        config, paths = default_session(args.workdir or Path(tmp))
        latents = Latents(paths["latents"], config["stages"]["latents"])
        mds = MDS(paths["mds"], config["stages"]["mds"])
    print(f"default session simulated and ingested in {time.perf_counter() - started:.1f} s")

    failures: list[str] = []
    rows = []

    print(f"latents (LangevinFlow): {latents.size()}")
    ref_rates, ref_grad = latents.forward_and_gradient(cpu)
    with threads(device_threads):
        dev_rates, dev_grad = latents.forward_and_gradient(device)
    value = float(np.abs(ref_rates - dev_rates).max())
    limit = TOLERANCES["latents_forward_max_abs_log_rate"]
    check("forward max |d log rate|", value, value <= limit, failures, limit)
    value = float(np.linalg.norm(ref_grad - dev_grad) / np.linalg.norm(ref_grad))
    limit = TOLERANCES["latents_gradient_rel_l2"]
    check("gradient relative L2", value, value <= limit, failures, limit)
    ref_path = latents.trajectory(cpu, args.check_steps)
    with threads(device_threads):
        dev_path = latents.trajectory(device, args.check_steps)
    value = float(np.abs(ref_path - dev_path).max())
    limit = TOLERANCES["latents_trajectory_max_abs_log_rate"]
    check(
        f"{args.check_steps} steps, shared draws: max |d log rate|",
        value,
        value <= limit,
        failures,
        limit,
    )
    ref = latents.timed(cpu, args.steps)
    with threads(device_threads):
        dev = latents.timed(device, args.steps)
    print(
        f"  co-bps after {args.steps} steps: cpu {ref['co_bps']:.4f}, {device} "
        f"{dev['co_bps']:.4f} (own random draws on each device: not compared)"
    )
    rows.append(("latents training", ref["steps_per_s"], dev["steps_per_s"]))

    k = config["stages"]["mds"]["clustering"]["initial_clusters"]
    print(f"mds: {mds.size(k)}")
    mds.train(cpu, 1)  # warm-up (one epoch): first-call kernel selection is not timed
    ref_trained, ref = mds.train(cpu, args.steps)
    with threads(device_threads):
        mds.train(device, 1)
        _, dev = mds.train(device, args.steps)
    print(f"  model: {ref['steps']} steps (whole epochs)")
    value = corr(ref["predicted"], dev["predicted"])
    limit = TOLERANCES["mds_model_prediction_corr_min"]
    check("model prediction correlation", value, value >= limit, failures, limit)
    value = abs(ref["median_test_corr"] - dev["median_test_corr"])
    limit = TOLERANCES["mds_model_median_test_corr_abs"]
    check("model |d median held-out r|", value, value <= limit, failures, limit)
    rows.append(("mds model training", ref["steps_per_s"], dev["steps_per_s"]))
    ref_opt = mds.optimise(ref_trained, cpu, args.steps)
    with threads(device_threads):
        dev_opt = mds.optimise(ref_trained, device, args.steps)
    value = abs(ref_opt["objective"] - dev_opt["objective"])
    limit = TOLERANCES["mds_optimise_objective_abs"]
    check("MDS |d objective| (nats)", value, value <= limit, failures, limit)
    value = corr(ref_opt["stimuli"], dev_opt["stimuli"])
    limit = TOLERANCES["mds_optimise_stimulus_corr_min"]
    check("MDS stimulus correlation", value, value >= limit, failures, limit)
    rows.append(
        (
            f"mds optimisation ({ref_opt['k']} stimuli)",
            ref_opt["steps_per_s"],
            dev_opt["steps_per_s"],
        )
    )

    print(f"\n{'part':<30}{'cpu steps/s':>13}{f'{device} steps/s':>16}{'ratio':>8}")
    for name, a, b in rows:
        print(f"{name:<30}{a:>13.1f}{b:>16.1f}{b / a:>8.2f}")
    print(
        f"total wall {time.perf_counter() - started:.0f} s; "
        + ("all checks passed" if not failures else f"FAILED: {', '.join(failures)}")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
