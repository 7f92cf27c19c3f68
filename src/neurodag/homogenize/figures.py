"""Figures of the homogenize stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from neurodag.plotting import SEQUENTIAL, figure, save_figure


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
