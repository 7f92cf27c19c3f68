"""The latents stage: trial-aligned spike counts -> LangevinFlow rates, latents and NLB metrics.

Reads ``responses(trial, neuron, time)`` (counts per bin, ``time`` the bin centre relative to
onset) from an ingest file, e.g. ``results/ingest/{dataset}/{recording}/lorenz_trials.nc``; writes
``rates(trial, time, neuron)`` in Hz and ``latent(trial, time, dim)`` for every trial, the split
(``heldout(neuron)``, ``validation(trial)``, ``forward(time)``) and the NLB metrics on the
validation trials (``co_bps``, ``fp_bps``, ``psth_r2``), plus ``rate_r2`` against ``true_rate``
when a truth file is given.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from neurodag.compute import Compute
from neurodag.errors import InputError
from neurodag.stages import Inputs, Output, Params, Spec

log = logging.getLogger(__name__)

MODEL_KEYS = {
    "langevinflow": (
        "latent_channels",
        "latent_sites",
        "potential_channels",
        "encoder_hidden",
        "decoder_width",
        "step",
        "damping",
        "temperature",
        "dropout",
        "encoder_states",
    ),
    "gru_vae": ("encoder_hidden", "dropout"),
}


def read_responses(
    path: str | Path, regions: list[str] | None
) -> tuple[xr.Dataset, np.ndarray, float]:
    """The file's trials restricted to ``regions`` (a session's other units are not the model's),
    and its counts ``(trial, time, neuron)`` and bin width (s), checked."""
    from neurodag.io.responses import read_spiking

    ds = read_spiking(
        path, "responses", ("trial", "neuron", "time"), regions=regions, key="stages.latents"
    )
    counts = ds["responses"].transpose("trial", "time", "neuron").values.astype(np.float32)
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise InputError(path, "responses", "counts must be finite and non-negative")
    if counts.shape[0] < 5 or counts.shape[1] < 3 or counts.shape[2] < 2:
        raise InputError(path, "responses", f"too small to train on: shape {counts.shape}")
    time = ds["time"].values.astype(float)
    steps = np.diff(time)
    if not np.allclose(steps, steps[0], rtol=1e-3):
        raise InputError(path, "time", "bins must be evenly spaced")
    return ds, counts, float(steps[0])


def build_model(params: dict, n_heldin: int, n_neurons: int, n_time: int):
    from neurodag.latents.model import GRUSequentialVAE, LangevinFlow

    cls = {"langevinflow": LangevinFlow, "gru_vae": GRUSequentialVAE}[params["model"]]
    # None leaves the model's own default (dropout differs between the two models)
    kwargs = {k: params[k] for k in MODEL_KEYS[params["model"]] if params[k] is not None}
    return cls(n_heldin, n_neurons, n_time, **kwargs)


def run(
    inputs: Inputs, params: Params, *, compute: Compute, dataset: Spec = None, output: Output = None
) -> xr.Dataset:
    """Train on the trials of ``inputs["responses"]`` and return the output dataset.

    Training checkpoints to ``<output stem>.checkpoint.pt`` and resumes from it when it was
    written by the same parameters and input (none without ``output``)."""
    from neurodag.io.netcdf import file_sha256

    path = Path(inputs["responses"][0])
    ds, counts, bin_s = read_responses(path, params["regions"])  # before the slow torch import
    checkpoint = output.with_name(output.stem + ".checkpoint.pt") if output else None
    if params["forward_bins"] >= counts.shape[1]:
        raise InputError(path, "time", f"{counts.shape[1]} bins, forward_bins asks for more")

    import torch

    from neurodag.latents.metrics import bits_per_spike, condition_psth, psth_r2, velocity_r2
    from neurodag.latents.smoothing import smooth
    from neurodag.latents.train import TrainSettings, fingerprint, infer, split_trials, train

    if compute.threads:
        torch.set_num_threads(compute.threads)
    dev = compute.torch_device()
    data = split_trials(
        counts,
        heldout_fraction=params["heldout_fraction"],
        forward_bins=params["forward_bins"],
        valid_fraction=params["validation_fraction"],
        seed=params["seed"],
    )
    settings = TrainSettings(
        **{f.name: params[f.name] for f in fields(TrainSettings) if f.name in params}
    )
    torch.manual_seed(params["seed"])
    model = build_model(params, len(data.heldin), data.n_neurons, data.n_time)
    run_id = fingerprint(params=params, input=file_sha256(path))
    log.info(
        "latents: %s on %d trials x %d bins x %d neurons (%d held out, %d forward bins), %s",
        params["model"],
        *counts.shape,
        len(data.heldout),
        params["forward_bins"],
        dev,
    )
    summary = train(
        model, data, settings, device=dev, checkpoint=checkpoint, run_id=run_id, name="latents"
    )
    all_trials = np.arange(counts.shape[0])
    rates, latent = infer(  # expected counts per bin
        model,
        data,
        all_trials,
        dev,
        posterior_samples=params["posterior_samples"],
        seed=params["seed"],
    )

    t_in, valid = data.n_heldin_time, data.valid
    metrics = {
        "co_bps": bits_per_spike(
            rates[valid, :t_in][:, :, data.heldout], counts[valid, :t_in][:, :, data.heldout]
        ),
        "fp_bps": bits_per_spike(rates[valid, t_in:], counts[valid, t_in:])
        if t_in < data.n_time
        else float("nan"),
        "psth_r2": float("nan"),
    }
    condition_name = params["condition_variable"]
    if condition_name in ds and ds[condition_name].dims == ("trial",):
        # Empirical PSTH as NLB forms it (nlb_tools make_tensors._make_psth): smoothed spikes
        # averaged over all trials of each condition; scored on the validation trials.
        cond = ds[condition_name].values
        if (~pd.isna(cond[valid])).any():
            smoothed = smooth(counts[:, :t_in], params["psth_smoothing_bins"])
            labels, psth = condition_psth(smoothed, cond)
            metrics["psth_r2"] = psth_r2(rates[valid, :t_in], psth, cond[valid], labels)
    if "behavior" in ds and set(ds["behavior"].dims) == {"trial", "time", "variable"}:
        # NLB velocity decoding (nlb_tools evaluation.velocity_decoding): a ridge decoder from the
        # held-in bins' rates to the behaviour, fit on the training trials, scored on validation
        behaviour = ds["behavior"].transpose("trial", "time", "variable").values[:, :t_in]
        metrics["velocity_r2"] = velocity_r2(
            rates[data.train, :t_in], behaviour[data.train], rates[valid, :t_in], behaviour[valid]
        )

    out = xr.Dataset(
        {
            "rates": (("trial", "time", "neuron"), (rates / bin_s).astype(np.float32)),
            "latent": (("trial", "time", "dim"), latent.astype(np.float32)),
            "heldout": ("neuron", np.isin(np.arange(data.n_neurons), data.heldout)),
            "validation": ("trial", np.isin(all_trials, valid)),
            "forward": ("time", np.arange(data.n_time) >= t_in),
            "counts": (
                ("trial", "time", "neuron"),
                ds["responses"].transpose("trial", "time", "neuron").values,
            ),
        },
        coords={
            "trial": ds["trial"].values,
            "time": ds["time"].values,
            "neuron": ds["neuron"].values,
            "dim": np.arange(latent.shape[-1]),
        },
    )
    for name in ("region", "probe"):
        if name in ds.coords and ds[name].dims == ("neuron",):
            out = out.assign_coords({name: ds[name]})
    for name, var in ds.data_vars.items():  # stimulus table columns ride along on trial
        if var.dims == ("trial",):
            out[name] = var
    for name, value in metrics.items():
        out[name] = float(value)
    draws = params["posterior_samples"]
    out["rates"].attrs.update(
        units="Hz",
        description=f"inferred firing rates, posterior predictive mean over {draws} draws"
        if draws
        else "inferred firing rates of the posterior-mean latent path",
    )
    out["latent"].attrs["description"] = "LangevinFlow latent position z_t (posterior mean path)"
    out["co_bps"].attrs["description"] = "bits/spike, held-out neurons, held-in bins, validation"
    out["fp_bps"].attrs["description"] = "bits/spike, all neurons, forward bins, validation"
    if "velocity_r2" in out:
        variables = ", ".join(map(str, ds["variable"].values))
        out["velocity_r2"].attrs["description"] = (
            f"NLB velocity R2: ridge decoding of {variables} from the rates, validation trials"
        )
    out["psth_r2"].attrs["description"] = (
        "R2 of condition-averaged validation rates to the smoothed PSTH of all trials (NLB)"
    )
    out["counts"].attrs["description"] = "observed spike counts per bin (the model's input)"
    out.attrs.update(
        stimulus_name=ds.attrs.get("stimulus_name", ""),
        model=params["model"],
        bin_size_s=bin_s,
        device=str(dev),
        steps=summary["steps"],
        train_wall_s=round(summary["wall_s"], 2),
        steps_per_s=round(summary["steps_per_s"], 3),
    )
    return out


def validate(result: xr.Dataset, truth_path: str | Path | None) -> xr.Dataset:
    """R2 of inferred to true rates (``true_rate(trial, neuron, time)`` in Hz in the truth file),
    on validation trials and held-in bins, matching neurons by id and trials by position; and the
    co-bps the planted rates themselves score on the same held-out neurons, bins and trials (the
    ceiling of ``co_bps``: it depends on how strongly the held-out neurons are modulated, so
    ``co_bps`` is compared across sessions as its fraction of this ceiling)."""
    if truth_path is None:  # recorded data: nothing planted to recover
        return xr.Dataset()
    from neurodag.latents.metrics import bits_per_spike, rate_r2
    from neurodag.validation import open_truth

    truth = open_truth(truth_path, "true_rate", result.attrs.get("stimulus_name"))
    true = truth["true_rate"]
    ids = [str(n) for n in result["neuron"].values]
    missing = sorted(set(ids) - {str(n) for n in true["neuron"].values})
    if missing or true.sizes["trial"] != result.sizes["trial"]:
        raise InputError(truth_path, "true_rate", "neurons or trials do not match the responses")
    true = true.sel(neuron=ids).transpose("trial", "time", "neuron").values
    valid, heldin = result["validation"].values, ~result["forward"].values
    rates = result["rates"].values.astype(np.float64)
    true = true[valid][:, heldin]
    score = rate_r2(rates[valid][:, heldin], true)
    heldout = result["heldout"].values
    counts = result["counts"].transpose("trial", "time", "neuron").values[valid][:, heldin]
    ceiling = bits_per_spike(
        true[:, :, heldout] * result.attrs["bin_size_s"],
        counts[:, :, heldout].astype(np.float64),
        name="true_rate",
    )
    out = xr.Dataset(
        {
            "validation_rate_r2": score,
            "validation_co_bps_true_rates": ceiling,
            "validation_co_bps_fraction": float(result["co_bps"]) / ceiling,
        }
    )
    out["validation_rate_r2"].attrs["description"] = (
        "R2 of inferred to planted rates, validation trials, held-in bins"
    )
    out["validation_co_bps_true_rates"].attrs["description"] = (
        "co-bps of the planted rates on the same held-out neurons, bins and trials (ceiling)"
    )
    out["validation_co_bps_fraction"].attrs["description"] = "co_bps / co_bps of planted rates"
    return out


def figures(out: xr.Dataset, stem: Path) -> list[Path]:
    """One validation trial: spikes and inferred rates of a few neurons, and the latent path."""
    from neurodag.plotting import CATEGORICAL, figure, save_figure

    trial = int(np.flatnonzero(out["validation"].values)[0])
    time = out["time"].values
    fig, axes = figure(1, 2, width=9.0, height=3.4)
    colours = __import__("matplotlib").colormaps[CATEGORICAL]
    for i, neuron in enumerate(range(min(4, out.sizes["neuron"]))):
        rate = out["rates"].values[trial, :, neuron]
        axes[0].plot(time, rate, color=colours(i), label=str(out["neuron"].values[neuron]))
        spikes = out["counts"].values[trial, :, neuron] / out.attrs["bin_size_s"]
        fired = spikes > 0  # empty bins would draw a row of dots along zero
        axes[0].plot(time[fired], spikes[fired], ".", color=colours(i), alpha=0.4)
    forward = out["forward"].values
    if forward.any():
        axes[0].axvspan(time[forward][0], time[-1], color="0.9", zorder=0, label="forward")
    axes[0].set(
        xlabel="time from onset (s)",
        ylabel="rate (Hz)",
        title=f"trial {trial}: inferred rates (lines), binned spikes (dots)",
    )
    axes[0].legend(fontsize=7)
    latent = out["latent"].values.reshape(-1, out.sizes["dim"])
    centred = latent - latent.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    pcs = (out["latent"].values - latent.mean(0)) @ vt[:2].T
    for k in np.flatnonzero(out["validation"].values)[:12]:
        axes[1].plot(pcs[k, :, 0], pcs[k, :, 1], lw=0.8)
    axes[1].set(xlabel="latent PC 1 (a.u.)", ylabel="latent PC 2 (a.u.)", title="latent paths")
    return [save_figure(fig, stem.with_name(stem.name + ".rates.png"))]
