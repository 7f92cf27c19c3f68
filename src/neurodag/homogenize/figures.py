"""Figures of the homogenize stage."""

from __future__ import annotations

import json
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


def behaviour_units(ds: xr.Dataset) -> dict[str, str]:
    """{variable: unit} of ``behavior`` (units are stored as JSON in its attrs)."""
    try:
        return json.loads(ds["behavior"].attrs.get("units", "{}"))
    except (TypeError, ValueError):
        return {}


def showcase_worm(ds: xr.Dataset) -> int:
    """The worm a figure shows: the first with a labelled neuron (else the first)."""
    labelled = np.flatnonzero(ds["labeled"].values.any(axis=1)) if "labeled" in ds else []
    return int(labelled[0]) if len(labelled) else 0


def draw_worm_activity(fig, ax, ds: xr.Dataset, w: int, colorbar_axes=None) -> None:
    """Heatmap of one worm's labelled traces over time (unlabelled ones where none is labelled)."""
    worm = str(ds.worm.values[w])
    n = int(ds["valid_length"].values[w]) if "valid_length" in ds else ds.sizes["time"]
    labeled = ds["labeled"].values[w].astype(bool)
    traces = ds["activity"].values[w, :n][:, labeled]
    names = ds.neuron.values[labeled]
    kind = "labelled neurons"
    if not labeled.any() and "unlabeled_activity" in ds:
        traces = ds["unlabeled_activity"].values[w, :n]
        keep = np.isfinite(traces).any(axis=0)
        traces, names = traces[:, keep], np.array([f"roi {k}" for k in np.flatnonzero(keep)])
        kind = "unlabelled traces (no labelled neuron)"
    time = ds.time.values[:n]
    if not names.size or n < 1:
        ax.text(0.5, 0.5, "no traces", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"worm {worm}: no traces")
        return
    finite = traces[np.isfinite(traces)]
    limit = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    image = ax.imshow(
        traces.T,
        aspect="auto",
        interpolation="nearest",
        cmap=DIVERGING,
        vmin=-limit,
        vmax=limit,
        extent=(time[0], time[-1] if n > 1 else 1.0, len(names) - 0.5, -0.5),
    )
    fig.colorbar(
        image,
        ax=ax if colorbar_axes is None else colorbar_axes,
        shrink=0.8,
        label="activity (z; blank: not imaged or a gap)",
    )
    step = max(1, len(names) // 40)
    ax.set_yticks(np.arange(0, len(names), step), names[::step], fontsize=6)
    ax.set(ylabel=kind, title=f"worm {worm}: {kind}")


def draw_behaviour(ax, ds: xr.Dataset, w: int) -> None:
    """One worm's behaviour on the activity's time axis: each variable min-max scaled in a band
    of its own (range in the label), reversals shaded."""
    n = int(ds["valid_length"].values[w]) if "valid_length" in ds else ds.sizes["time"]
    time = ds.time.values[:n]
    units = behaviour_units(ds)
    variables = [str(v) for v in ds["variable"].values]
    values = ds["behavior"].values[w, :n]
    ticks, labels = [], []
    for k, name in enumerate(variables):
        y = values[:, k]
        finite = y[np.isfinite(y)]
        unit = f" ({units[name]})" if units.get(name) else ""
        ticks.append(len(variables) - 1 - k + 0.4)
        if not finite.size:
            labels.append(f"{name}{unit}: no data")
            continue
        low, high = float(finite.min()), float(finite.max())
        span = high - low if high > low else 1.0
        base = len(variables) - 1 - k
        ax.plot(time, base + 0.8 * (y - low) / span, lw=0.8, color=f"C{k % 10}")
        labels.append(f"{name}{unit}\n[{low:.3g}, {high:.3g}]")
        if name == "reversal":
            on = np.nan_to_num(y) > 0.5
            edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
            for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
                ax.axvspan(time[a], time[b - 1], color="0.85", lw=0, zorder=0)
    ax.set_yticks(ticks, labels, fontsize=6)
    ax.set_ylim(-0.2, len(variables))
    ax.set(xlabel="time (s)", title="behaviour (each scaled to its range; grey: reversing)")


def plot_activity(ds: xr.Dataset, path: str | Path, title: str = "") -> Path:
    """One worm's homogenized traces (the first with labelled neurons) with its behaviour below
    them on the same time axis, and the traces of every worm."""
    has_behaviour = "behavior" in ds and ds.sizes.get("variable", 0) > 0
    w = showcase_worm(ds)
    if has_behaviour:
        fig, grid = figure(
            2,
            2,
            width=14,
            height=7,
            gridspec_kw={"width_ratios": [2.2, 1], "height_ratios": [2.4, 1.2]},
        )
        ax, counts_ax = grid[0, 0], grid[0, 1]
        grid[1, 1].set_axis_off()
        draw_behaviour(grid[1, 0], ds, w)
        ax.sharex(grid[1, 0])
        ax.tick_params(labelbottom=False)
        draw_worm_activity(fig, ax, ds, w, colorbar_axes=[ax, grid[1, 0]])
    else:
        fig, (ax, counts_ax) = figure(
            1, 2, width=14, height=5, gridspec_kw={"width_ratios": [2.2, 1]}
        )
        draw_worm_activity(fig, ax, ds, w)
    if not has_behaviour:
        ax.set_xlabel("time (s)")
    ax = counts_ax
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
