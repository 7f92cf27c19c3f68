"""The bicluster stage: Allen binned counts -> ``results/bicluster/{dataset}.nc`` + figures.

Reads the session-long ``counts(neuron, time)`` written by ingest (with ``region(neuron)`` and
``epoch(time)``), keeps the units of the configured regions and the bins of the configured
epochs (concatenated in time order, as Wei et al. did with spontaneous + natural_movie_one),
re-bins to ``bin_size_s`` (the paper used 0.5 s), drops units firing below ``min_rate_hz``, runs
the chains (in parallel on a Dask client) and writes the posterior summary of
:mod:`neurodag.bicluster.fit`. Figures beside the output: the neuron and time-bin co-clustering
matrices, and the state sequence over the raster sorted by neuron cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurodag.compute import Compute
from neurodag.errors import InputError
from neurodag.stages import Inputs, Output, Params, Spec

log = logging.getLogger(__name__)

SAMPLER_KEYS = (
    "n_iterations", "burn_in", "check_every", "thin", "latent_dim", "n_clusters_max",
    "n_clusters_init", "n_states_max", "split_merge_proposals", "hmm_kappa", "continuous_scans",
    "seed",
)  # fmt: skip


def select_counts(path: Path, params: Mapping[str, Any]) -> xr.DataArray:
    """The (neuron, time) counts of the configured regions and epochs, re-binned."""
    from neurodag.io.responses import read_spiking

    ds = read_spiking(
        path,
        "counts",
        ("neuron", "time"),
        regions=params["regions"],
        epochs=params["epochs"],
        key="stages.bicluster",
    )
    counts = ds["counts"].transpose("neuron", "time")
    bin_in = float(ds.attrs.get("bin_size_s", ds["counts"].attrs.get("bin_size_s", np.nan)))
    if not np.isfinite(bin_in):
        raise InputError(path, "bin_size_s", "attribute missing")
    factor = max(1, int(round(params["bin_size_s"] / bin_in)))
    n_bins = counts.sizes["time"] // factor
    values = counts.values[:, : n_bins * factor].reshape(counts.sizes["neuron"], n_bins, factor)
    times = counts["time"].values[: n_bins * factor].reshape(n_bins, factor).mean(axis=1)
    binned = xr.DataArray(
        values.sum(axis=-1),
        dims=("neuron", "time"),
        coords={"neuron": counts["neuron"].values, "time": times},
    )
    for name in ("region", "probe"):
        if name in counts.coords:
            binned = binned.assign_coords({name: ("neuron", counts[name].values)})
    rate = binned.mean("time") / (bin_in * factor)
    binned = binned.isel(neuron=(rate >= params["min_rate_hz"]).values)
    if binned.sizes["neuron"] < 2 or binned.sizes["time"] < 10:
        raise InputError(path, "counts", f"too little data after selection: {dict(binned.sizes)}")
    binned.attrs["bin_size_s"] = bin_in * factor
    return binned


def run(
    inputs: Inputs, params: Params, *, compute: Compute, dataset: Spec = None, output: Output = None
) -> xr.Dataset:
    """Chains on the counts of ``inputs["counts"]`` (one recording's ingest ``counts.nc``)."""
    from neurodag.bicluster.fit import ESS_LIMIT, RHAT_LIMIT, fit
    from neurodag.bicluster.sampler import Settings

    counts = select_counts(Path(inputs["counts"][0]), params)
    log.info("bicluster: %d neurons x %d bins", *counts.shape)
    settings = Settings(**{key: params[key] for key in SAMPLER_KEYS})
    workers = min(compute.threads or 1, params["chains"])
    if workers > 1:
        with compute.client(workers) as client:
            out = fit(counts.values, settings, params["chains"], client)
    else:
        out = fit(counts.values, settings, params["chains"], None)
    out = out.assign_coords(
        neuron=counts["neuron"].values,
        neuron2=counts["neuron"].values,
        time=counts["time"].values,
        time2=counts["time"].values,
    )
    for name in ("region", "probe"):
        if name in counts.coords:
            out = out.assign_coords({name: ("neuron", counts[name].values)})
    if out.attrs["not_converged"]:
        log.warning(
            "bicluster: the chains have not converged (R-hat > %g or bulk ESS < %g) for: %s "
            "(worst R-hat %.3f, smallest ESS %.1f over %d chains x %d draws, %d iterations "
            "each); posterior summaries are not trustworthy: run more iterations "
            "(n_iterations) or chains",
            RHAT_LIMIT, ESS_LIMIT, out.attrs["not_converged"], out.attrs["rhat_max"],
            out.attrs["ess_min"], out.attrs["n_chains"], out.attrs["n_draws_per_chain"],
            out.attrs["n_iterations_per_chain"],
        )  # fmt: skip
    else:
        log.info(
            "bicluster: converged after %d iterations per chain (worst R-hat %.3f, smallest "
            "ESS %.1f)",
            out.attrs["n_iterations_per_chain"],
            out.attrs["rhat_max"],
            out.attrs["ess_min"],
        )
    out["counts"] = counts.drop_vars([c for c in counts.coords if c not in counts.dims])
    # the truth group of a simulated session is named by its (first) stimulus block
    out.attrs.update(bin_size_s=counts.attrs["bin_size_s"], stimulus_name=params["epochs"][0])
    return out


def validate(out: xr.Dataset, truth_path: str | Path | None) -> xr.Dataset:
    """The chains' worst rank-normalised R-hat and smallest bulk ESS over the label-invariant
    quantities (recorded data too), and, with a truth file, the ARI of the neuron clusters and
    of the states against the planted ``true_cluster`` and ``true_state`` (a simulated
    session's piece; its bins are matched to ours by time)."""
    convergence = {
        "validation_rhat_max": float(out.attrs.get("rhat_max", np.nan)),
        "validation_ess_min": float(out.attrs.get("ess_min", np.nan)),
    }
    if truth_path is None:  # recorded data: nothing planted to recover
        return xr.Dataset(convergence)
    from neurodag.partitions import adjusted_rand
    from neurodag.validation import open_truth

    truth = open_truth(truth_path, "true_cluster", out.attrs.get("stimulus_name"))
    ids = [str(n) for n in out["neuron"].values]
    known = np.isin(ids, truth["neuron"].values.astype(str))
    scores = {"validation_neuron_ari": float("nan"), "validation_state_ari": float("nan")}
    if known.any():
        true_cluster = truth["true_cluster"].sel(neuron=np.asarray(ids)[known]).values
        found = out["neuron_cluster"].values[known]
        scores["validation_neuron_ari"] = adjusted_rand(true_cluster, found)
    true_time = truth["time"].values
    index = np.clip(np.searchsorted(true_time, out["time"].values), 0, len(true_time) - 1)
    half_bin = 0.5 * float(truth.attrs.get("dt_s", np.median(np.diff(true_time))))
    matched = np.abs(true_time[index] - out["time"].values) <= half_bin
    if matched.any():
        true_state = truth["true_state"].values[index[matched]]
        scores["validation_state_ari"] = adjusted_rand(true_state, out["state"].values[matched])
    scores.update(convergence)
    log.info("bicluster validation: %s", scores)
    return xr.Dataset(scores)


def _time_axis(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, str]:
    """Positions of the analysed bins on a figure's time axis, the positions where a gap in
    time starts (dashed lines), and the axis label: time in s when the bins are contiguous;
    when the selected epochs leave gaps, the bins are drawn side by side (position = bin index),
    so that the raster and the states stay aligned."""
    t = ds["time"].values.astype(float)
    bin_s = float(ds.attrs.get("bin_size_s", np.median(np.diff(t)) if t.size > 1 else 1.0))
    jumps = np.flatnonzero(np.diff(t) > 1.5 * bin_s) + 1
    if jumps.size == 0:
        return t, jumps, "time (s)"
    return np.arange(t.size, dtype=float), jumps - 0.5, f"bin of {bin_s:g} s (gaps in time dashed)"


def figures(ds: xr.Dataset, stem: Path) -> list[Path]:
    """Co-clustering matrices and the state sequence over the sorted raster."""
    from neurodag.plotting import CATEGORICAL, SEQUENTIAL, figure, save_figure

    order = np.argsort(ds["neuron_cluster"].values, kind="stable")
    fig, axes = figure(1, 2, width=9, height=4)
    im = axes[0].imshow(
        ds["neuron_coclustering"].values[np.ix_(order, order)], cmap=SEQUENTIAL, vmin=0, vmax=1
    )
    axes[0].set(title="neurons", xlabel="neuron (sorted by cluster)", ylabel="neuron")
    t, gaps, label = _time_axis(ds)
    width = float(np.median(np.diff(t))) if t.size > 1 else 1.0  # one bin on the axis
    lo, hi = t[0] - width / 2, t[-1] + width / 2
    axes[1].imshow(
        ds["time_coclustering"].values, cmap=SEQUENTIAL, vmin=0, vmax=1, extent=(lo, hi, hi, lo)
    )
    for gap in gaps:
        axes[1].axvline(gap, color="tab:red", lw=0.6, ls="--")
        axes[1].axhline(gap, color="tab:red", lw=0.6, ls="--")
    axes[1].set(title="time bins", xlabel=label, ylabel=label)
    fig.colorbar(im, ax=axes, label="posterior co-clustering probability")
    paths = [save_figure(fig, stem.with_name(stem.name + ".coclustering.png"))]

    fig, ax = figure(width=9, height=4.5)
    counts = ds["counts"].values[order]
    ax.imshow(
        np.log1p(counts), aspect="auto", cmap="Greys", interpolation="nearest",
        extent=(lo, hi, len(order), 0),
    )  # fmt: skip
    import matplotlib.pyplot as plt

    colours = plt.get_cmap(CATEGORICAL)
    states = ds["state"].values
    for s in np.unique(states):
        ax.bar(
            t[states == s], 1.5, width=width, bottom=-2.0, color=colours(s % 10), label=f"state {s}"
        )
    bounds = np.flatnonzero(np.diff(ds["neuron_cluster"].values[order])) + 1
    for b in bounds:
        ax.axhline(b, color="tab:red", lw=0.8)
    for gap in gaps:
        ax.axvline(gap, color="tab:red", lw=0.8, ls="--")
    ax.set(xlabel=label, ylabel="neuron (sorted by cluster)", ylim=(len(order), -2.2))
    ax.legend(
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=min(4, np.unique(states).size),
        fontsize=7,
    )
    paths.append(save_figure(fig, stem.with_name(stem.name + ".states.png")))
    return paths
