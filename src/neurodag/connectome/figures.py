"""Figures of the connectome stage: time factors against stimulus epochs, community-ordered
affinity graphs per component, and the rank-selection curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from neurodag.plotting import CATEGORICAL, SEQUENTIAL, figure, save_figure


def time_factor_figure(result: xr.Dataset, path: Path) -> Path:
    rank = result.sizes["component"]
    fig, axes = figure(rank, 1, width=7.0, height=1.0 + 1.1 * rank, sharex=True, squeeze=False)
    runs = []
    if "epoch_name" in result:
        runs = list(
            zip(
                result["epoch_start"].values.astype(float),
                result["epoch_stop"].values.astype(float),
                result["epoch_name"].values.astype(str),
                strict=True,
            )
        )
    names = sorted({r[2] for r in runs})
    import matplotlib

    palette = matplotlib.colormaps[CATEGORICAL]
    for r, ax in enumerate(axes[:, 0]):
        for start, stop, name in runs:
            if name not in ("", "spontaneous", "none"):
                ax.axvspan(start, stop, color=palette(names.index(name) % 10), alpha=0.15, lw=0)
        ax.plot(result["window_time"], result["time_factor"][r], color="k", lw=1.2)
        ax.set_ylabel(f"comp. {r}\nloading (a.u.)")
    axes[-1, 0].set_xlabel("window centre (s)")
    if runs:
        fig.suptitle("NTF time factors; shading: stimulus epochs (worm 0)")
        handles = [
            matplotlib.patches.Patch(color=palette(names.index(n) % 10), alpha=0.3, label=n)
            for n in names
            if n not in ("", "spontaneous", "none")
        ]
        # above the first panel, so that it never hides a time factor
        axes[0, 0].legend(
            handles=handles,
            loc="lower left",
            bbox_to_anchor=(0.0, 1.0),
            ncols=min(4, len(handles) or 1),
            frameon=False,
            fontsize=8,
        )
    return save_figure(fig, path)


def community_figure(result: xr.Dataset, path: Path) -> Path:
    """Each component's neuron graph (the SBM's input, the pipeline's ``component_graph``),
    neurons ordered by SBM block and, inside a block, by strength; white lines separate blocks,
    grey marks pairs seen in no worm, and the title names the strongest neurons of the top two
    blocks."""
    import matplotlib

    from neurodag.connectome.pipeline import result_component_graph

    rank = result.sizes["component"]
    cols = min(rank, 3)
    rows = int(np.ceil(rank / cols))
    fig, axes = figure(rows, cols, width=3.6 * cols, height=3.7 * rows, squeeze=False)
    names = result["neuron"].values
    cmap = matplotlib.colormaps[SEQUENTIAL].copy()
    cmap.set_bad("0.8")
    for r in range(rows * cols):
        ax = axes.flat[r]
        if r >= rank:
            ax.axis("off")
            continue
        labels = result["community"].values[r]
        weights = result_component_graph(result, r)
        np.fill_diagonal(weights, 0.0)
        strength = np.nansum(weights, axis=1)
        order = np.lexsort((-strength, labels))
        image = ax.imshow(weights[np.ix_(order, order)], cmap=cmap, interpolation="nearest")
        bounds = np.flatnonzero(np.diff(labels[order])) + 0.5
        for b in bounds:
            ax.axhline(b, color="w", lw=0.6)
            ax.axvline(b, color="w", lw=0.6)
        lines = [f"component {r}: {labels.max() + 1} SBM blocks"]
        for block in range(min(2, labels.max() + 1)):
            members = names[order][labels[order] == block]
            more = f" +{len(members) - 6}" if len(members) > 6 else ""
            lines.append(f"block {block}: {' '.join(members[:6])}{more}")
        ax.set_title("\n".join(lines), fontsize=8, loc="left")
        ax.set_xlabel("neuron (ordered by block)\ngrey: pair recorded together in no worm")
        ax.set_ylabel("neuron (ordered by block)")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.7, label="sqrt modelled affinity (a.u.)")
    return save_figure(fig, path)


def rank_figure(result: xr.Dataset, path: Path) -> Path:
    fig, (ax1, ax2) = figure(1, 2, width=6.4, height=2.6)
    ranks = result["rank"].values
    for k in range(result.sizes["restart"]):
        ax1.plot(ranks, result["rank_error"][:, k], "o", color="0.6", ms=3)
    ax1.plot(ranks, result["rank_error"].min("restart"), "k-")
    ax1.axvline(result.attrs["rank"], color="C3", ls="--", lw=1)
    ax1.set_xlabel("rank")
    ax1.set_ylabel("relative error")
    ax2.plot(ranks, result["rank_similarity"], "ko-", label="restart similarity")
    if "rank_worm_spread" in result:
        ax2.plot(ranks, result["rank_worm_spread"], "s--", color="C0", label="min worm spread")
        ax2.legend(frameon=False, fontsize="small")
    ax2.axvline(result.attrs["rank"], color="C3", ls="--", lw=1)
    ax2.set_ylim(0, 1.05)
    ax2.set_xlabel("rank")
    ax2.set_ylabel("score")
    return save_figure(fig, path)
