"""Figures of the homogenize stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from neurodag.plotting import DIVERGING, SEQUENTIAL, figure, save_figure


def plot_connectome(ds: xr.Dataset, path: str | Path, title: str = "") -> Path:
    """Consensus chemical and electrical adjacency (log synapse counts) and edges per source."""
    fig, axes = figure(1, 3, width=15, height=4.6, gridspec_kw={"width_ratios": [1, 1, 0.9]})
    consensus = ds["weight"].sel(source="consensus") if "consensus" in ds.source else None
    for ax, synapse in zip(axes[:2], ("chemical", "electrical"), strict=True):
        if consensus is None or not np.isfinite(consensus.sel(synapse=synapse)).any():
            ax.set_axis_off()
            ax.set_title(f"no anatomical {synapse} weights")
            continue
        values = np.log1p(np.nan_to_num(consensus.sel(synapse=synapse).values))
        image = ax.imshow(values, cmap=SEQUENTIAL, interpolation="nearest", aspect="equal")
        fig.colorbar(image, ax=ax, shrink=0.8, label="log(1 + mean synapse count)")
        n_edges = int((values > 0).sum())
        ax.set(
            title=f"consensus {synapse} ({n_edges} edges)",
            xlabel="postsynaptic neuron (canonical order)",
            ylabel="presynaptic neuron (canonical order)",
        )
    ax = axes[2]
    sources = list(ds.source.values)
    synapses = list(ds.synapse.values)
    width = 0.8 / len(synapses)
    for i, synapse in enumerate(synapses):
        counts = [
            int((np.nan_to_num(ds["weight"].sel(source=s, synapse=synapse).values) != 0).sum())
            for s in sources
        ]
        ax.barh(
            np.arange(len(sources)) + i * width,
            counts,
            height=width,
            label=synapse,
        )
    ax.set_yticks(np.arange(len(sources)) + width * (len(synapses) - 1) / 2, sources)
    ax.invert_yaxis()
    ax.set(xlabel="number of nonzero edges", title="edges per source")
    ax.legend(title="synapse", loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_activity(ds: xr.Dataset, path: str | Path, title: str = "") -> Path:
    """First worm's homogenized traces (labelled neurons) and labelled neurons per worm."""
    fig, axes = figure(1, 2, width=14, height=5, gridspec_kw={"width_ratios": [2.2, 1]})
    ax = axes[0]
    worm = str(ds.worm.values[0])
    n = int(ds["valid_length"].values[0])
    labeled = ds["labeled"].values[0].astype(bool)
    traces = ds["activity"].values[0, :n][:, labeled]
    names = ds.neuron.values[labeled]
    time = ds.time.values[:n]
    limit = float(np.nanpercentile(np.abs(traces), 99)) if traces.size else 1.0
    image = ax.imshow(
        traces.T,
        aspect="auto",
        interpolation="nearest",
        cmap=DIVERGING,
        vmin=-limit,
        vmax=limit,
        extent=(time[0], time[-1] if n > 1 else 1.0, len(names) - 0.5, -0.5),
    )
    fig.colorbar(image, ax=ax, shrink=0.8, label="normalised activity (z)")
    step = max(1, len(names) // 40)
    ax.set_yticks(np.arange(0, len(names), step), names[::step], fontsize=6)
    ax.set(xlabel="time (s)", ylabel="labelled neuron", title=f"worm {worm}: labelled neurons")
    ax = axes[1]
    per_worm = ds["labeled"].sum("neuron").values
    unlabeled = np.isfinite(ds["unlabeled_activity"]).any("time").sum("roi").values
    positions = np.arange(ds.sizes["worm"])
    ax.barh(positions, per_worm, label="labelled (canonical slot)")
    ax.barh(positions, unlabeled, left=per_worm, label="unlabelled (kept apart)")
    ax.set_yticks(positions, ds.worm.values, fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="number of traces", title="traces per worm")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    if title:
        fig.suptitle(f"{title}: {ds.sizes['worm']} worms, time step {float(ds.attrs['dt']):.3g} s")
    return save_figure(fig, path)


def plot_homogenized(ds: xr.Dataset, path: str | Path, title: str = "") -> Path:
    """The summary figure of any homogenize output (connectomes or calcium activity)."""
    if "activity" in ds:
        return plot_activity(ds, path, title)
    return plot_connectome(ds, path, title)
