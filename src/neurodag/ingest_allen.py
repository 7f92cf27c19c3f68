"""Ingest of an Allen Visual Coding Neuropixels session into the spiking contract.

From a session read by :mod:`neurodag.io.allen_nwb` this builds

- ``counts.nc``: session-long ``counts(neuron, time)`` at ``bin_size_s`` with coords
  ``region(neuron)``, ``probe(neuron)``, ``epoch(time)`` (the stimulus block each bin lies in),
  the units' quality metrics on ``neuron``, ``valid(time)`` (False in ``invalid_times``), running
  speed and the stimulus blocks;
- ``{stimulus}.nc`` for each stimulus asked for: trial-aligned ``responses(trial, neuron, time)``
  (``time`` = bin centre relative to the presentation's start) with every column of the stimulus
  table as a variable on ``trial`` and, for image stimuli, ``image(frame, y, x)`` with
  ``image_frame(frame)``: the dataset's ``images:`` (:mod:`neurodag.io.stimulus_images`; real
  sessions carry no templates), else the file's ``stimulus_template``.

Binning is vectorised over units (:mod:`neurodag.spikes`). The outputs are built by the generic
NWB spiking reader's functions (:mod:`neurodag.io.nwb_spikes`: ``session_counts_dataset``,
``aligned_responses``, ``select_regions``); this module adds the Allen rules: AllenSDK's unit
filter, the ``*_presentations`` stimulus tables and their blocks, ``invalid_times``, running speed
and image templates.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from neurodag.errors import ConfigError, InputError
from neurodag.io import nwb_spikes
from neurodag.io.allen_nwb import AllenSession, read_session
from neurodag.io.nwb_spikes import (  # the generic NWB spiking code (one code path)
    COUNTS,
    NO_EPOCH,  # noqa: F401 (re-exported)
    aligned_responses,
    epochs_of,  # noqa: F401 (re-exported)
    session_counts_dataset,
    trial_variables,  # noqa: F401 (re-exported)
)
from neurodag.io.stimulus_images import StimulusImages, check_frames, dataset_images
from neurodag.spikes import check_bin_size

log = logging.getLogger(__name__)

SIMULATED_RECORDING = "session"  # neurodag simulate allen writes session.nwb


def responses_for(spec: dict, params: dict) -> dict[str, dict]:
    """The stimuli to align for a dataset: the dataset's own ``responses`` entry replaces the
    stage default; a stimulus set to null is left out."""
    chosen = spec.get("responses", params.get("responses", {})) or {}
    return {name: options for name, options in chosen.items() if options is not None}


def select_regions(session: AllenSession, regions: list[str] | None) -> AllenSession:
    """Keep the units of ``regions`` (None: all). A region no unit of the file has is an error."""
    return nwb_spikes.select_regions(session, regions, "electrodes/location")


def stimulus_blocks(presentations: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per stimulus block (a contiguous run of one stimulus): name, start, stop."""
    rows = []
    for name, table in presentations.items():
        if table.empty:
            continue
        block = table["stimulus_block"] if "stimulus_block" in table else pd.Series(0, table.index)
        block = pd.Series(np.asarray(block).astype(str), index=table.index)
        for _, part in table.groupby(block, sort=False):
            rows.append((name, part["start_time"].min(), part["stop_time"].max()))
    blocks = pd.DataFrame(rows, columns=["stimulus", "start", "stop"])
    return blocks.sort_values("start", kind="stable").reset_index(drop=True)


def session_counts(session: AllenSession, bin_size_s: float) -> xr.Dataset:
    """Session-long ``counts(neuron, time)`` and what belongs with it (see the module doc)."""
    bin_size_s = check_bin_size(bin_size_s, "stages.ingest.allen.bin_size_s")
    ds = session_counts_dataset(
        session, session.presentations.values(), bin_size_s, stimulus_blocks(session.presentations)
    )
    time = ds["time"].values
    n_bins = len(time)
    invalid = session.invalid_times
    edges_lo, edges_hi = time - bin_size_s / 2, time + bin_size_s / 2
    valid = np.ones(n_bins, dtype=bool)
    for lo, hi in zip(invalid["start_time"], invalid["stop_time"], strict=True):
        valid &= ~((edges_lo < hi) & (edges_hi > lo))
    ds["valid"] = ("time", valid)
    ds["invalid_start"] = ("invalid", invalid["start_time"].to_numpy(dtype=float))
    ds["invalid_stop"] = ("invalid", invalid["stop_time"].to_numpy(dtype=float))
    ds["invalid_tags"] = ("invalid", invalid["tags"].astype(str).to_numpy())
    if session.running_speed is not None:
        ds = ds.assign_coords(running_time=session.running_speed["time"].to_numpy())
        ds["running_speed"] = ("running_time", session.running_speed["speed"].to_numpy())
        ds["running_speed"].attrs["units"] = "cm/s"
    ds.attrs.update(
        session_id=session.session_id,
        source=str(session.path),
        units_in_file=session.filter_counts.get("units", len(session.units)),
        units_kept=len(session.units),
    )
    return ds


def stimulus_images(
    session: AllenSession, external: dict[str, StimulusImages]
) -> dict[str, StimulusImages]:
    """The images of each stimulus, from one source: the dataset's ``images:`` option, else the
    file's ``stimulus_template`` (frame k = the k-th template image)."""
    images = {
        name: StimulusImages(
            np.arange(len(stack)), stack, f"{session.path}: stimulus_template/{name}"
        )
        for name, stack in session.templates.items()
    }
    for name in sorted(set(images) & set(external)):
        log.info("%s: images from %s replace the file's template", name, external[name].source)
    return {**images, **external}


def stimulus_responses(
    session: AllenSession,
    stimulus: str,
    window_s: list[float],
    bin_size_s: float,
    images: StimulusImages | None = None,
) -> xr.Dataset:
    """Trial-aligned ``responses(trial, neuron, time)`` for one stimulus table, with its
    ``images`` (checked to cover every image frame the table shows) as ``image(frame, y, x)``
    and their frame indices as ``image_frame(frame)``."""
    bin_size_s = check_bin_size(bin_size_s, f"stages.ingest.allen.responses.{stimulus}.bin_size_s")
    if stimulus not in session.presentations:
        raise InputError(
            session.path,
            f"intervals/{stimulus}_presentations",
            f"no such stimulus table; the file has {', '.join(sorted(session.presentations))}",
        )
    table = session.presentations[stimulus]
    extra = {}
    if images is not None:
        where = f"intervals/{stimulus}_presentations"
        if "frame" not in table:
            raise InputError(
                session.path, f"{where}/frame", f"no such column, so images.{stimulus} is unused"
            )
        check_frames(images, table["frame"].to_numpy(), session.path, where, f"images.{stimulus}")
        extra["image"] = (("frame", "y", "x"), images.images)
    ds = aligned_responses(
        session.spike_times,
        session.spike_index,
        session.units,
        table,
        table["start_time"].to_numpy(dtype=float),
        window_s,
        bin_size_s,
        relative_to="presentation start",
        extra=extra,
    )
    if images is not None:
        ds = ds.assign_coords(image_frame=("frame", images.frame))
        ds["image_frame"].attrs["description"] = "frame index of each image (blank -1: none)"
        ds["image"].attrs["source"] = images.source
    ds.attrs.update(stimulus_name=stimulus, session_id=session.session_id, source=str(session.path))
    return ds


def simulated_recordings(spec: dict, suffixes: tuple[str, ...]) -> list[str]:
    """A simulated Allen dataset is one session, ``results/simulate/{dataset}/session.nwb``."""
    return [SIMULATED_RECORDING]


def read_recording(spec: dict, recording: str, files: list[Path], params: dict):
    """The format registry's reader: :func:`ingest_session` of the recording's NWB file."""
    return ingest_session(files[0], spec, params)


def ingest_session(path: str | Path, spec: dict, params: dict) -> dict[str, xr.Dataset]:
    """The output datasets of one session: ``{"counts": ..., stimulus: ...}``.

    ``params`` is ``stages.ingest.allen``; every check runs before anything is returned, so a bad
    input or setting leaves no output file.
    """
    check_bin_size(params["bin_size_s"], "stages.ingest.allen.bin_size_s")
    responses = responses_for(spec, params)
    for stimulus, options in responses.items():
        check_bin_size(options["bin_size_s"], f"responses.{stimulus}.bin_size_s")
        a, b = options["window_s"]
        if not b > a:
            raise ConfigError(f"responses.{stimulus}.window_s: end {b} must be after start {a}")
    external = dataset_images(spec)
    for stimulus in sorted(set(external) - set(responses)):
        log.warning("images.%s: the stimulus is not in responses; its images are unused", stimulus)
    session = read_session(path, params.get("unit_filter"))
    session = select_regions(session, params.get("regions"))
    images = stimulus_images(session, external)
    outputs = {COUNTS: session_counts(session, params["bin_size_s"])}
    for stimulus, options in responses.items():
        outputs[stimulus] = stimulus_responses(
            session, stimulus, options["window_s"], options["bin_size_s"], images.get(stimulus)
        )
    return outputs


def figures(outputs: dict[str, xr.Dataset], outdir: Path) -> list[Path]:
    """A raster of the counts and a mean response figure per aligned stimulus, beside them."""
    return [
        (plot_counts if name == COUNTS else plot_responses)(ds, Path(outdir) / f"{name}.png")
        for name, ds in outputs.items()
    ]


def _region_order(ds: xr.Dataset) -> tuple[np.ndarray, list[str]]:
    """Units sorted by region (then by their order in the file), and the regions in that order."""
    regions = ds["region"].values.astype(str)
    names = list(dict.fromkeys(sorted(regions)))
    order = np.lexsort((np.arange(len(regions)), [names.index(r) for r in regions]))
    return order, names


def plot_counts(ds: xr.Dataset, path: str | Path, max_columns: int = 1500) -> Path:
    """Quick look at a session: each unit's rate over the session (units grouped by region) and
    the mean rate per region, with the stimulus blocks marked."""
    from matplotlib import colormaps

    from neurodag.plotting import CATEGORICAL, SEQUENTIAL, figure, save_figure

    counts = ds["counts"].values.astype(np.float32)
    bin_size = float(ds.attrs["bin_size_s"])
    factor = max(1, -(-counts.shape[1] // max_columns))  # sum bins so the image stays legible
    usable = counts.shape[1] // factor * factor
    rate = counts[:, :usable].reshape(len(counts), -1, factor).sum(-1) / (factor * bin_size)
    time = ds["time"].values[:usable].reshape(-1, factor).mean(-1) if usable else np.array([])
    order, regions = _region_order(ds)
    fig, (top, bottom) = figure(2, 1, width=9.0, height=6.0, sharex=True, height_ratios=[1, 2])
    colours = colormaps[CATEGORICAL]
    for k, region in enumerate(regions):
        members = ds["region"].values.astype(str) == region
        label = f"{region} ({int(members.sum())})"
        top.plot(time, rate[members].mean(0), lw=0.8, color=colours(k % 10), label=label)
    blocks = zip(
        ds["block_start"].values, ds["block_stop"].values, ds["block_stimulus"].values, strict=True
    )
    for k, (start, stop, name) in enumerate(blocks):
        top.axvspan(start, stop, color="0.9" if k % 2 == 0 else "0.96", zorder=0)
        top.text(
            (start + stop) / 2,
            0.97,
            str(name),
            transform=top.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=7,
            clip_on=True,
        )
    top.set_ylabel("mean rate (Hz)")
    top.legend(fontsize=7, ncol=min(4, len(regions)), loc="lower right", bbox_to_anchor=(1, 1.02))
    if usable:
        extent = (
            time[0] - factor * bin_size / 2,
            time[-1] + factor * bin_size / 2,
            len(order) - 0.5,
            -0.5,
        )
        vmax = max(np.percentile(rate, 99), 1e-9)
        image = bottom.imshow(
            rate[order],
            aspect="auto",
            interpolation="nearest",
            cmap=SEQUENTIAL,
            extent=extent,
            vmin=0,
            vmax=vmax,
        )
        fig.colorbar(image, ax=bottom, label="rate (Hz)")
    sorted_regions = ds["region"].values.astype(str)[order]
    edges = np.flatnonzero(sorted_regions[1:] != sorted_regions[:-1]) + 0.5
    for edge in edges:
        bottom.axhline(edge, color="w", lw=0.6)
    ticks = [np.mean(np.flatnonzero(sorted_regions == r)) for r in regions]
    bottom.set_yticks(ticks, regions)
    bottom.set_xlabel("session time (s)")
    bottom.set_ylabel("unit (by region)")
    top.set_title(
        f"{ds.attrs.get('session_id', '')}: {len(order)} units, {factor * bin_size:g} s bins shown",
        loc="left",
    )
    return save_figure(fig, path)


def plot_responses(ds: xr.Dataset, path: str | Path) -> Path:
    """Peri-stimulus time histogram per region (mean over trials and units), in Hz."""
    from matplotlib import colormaps

    from neurodag.plotting import CATEGORICAL, figure, save_figure

    bin_size = float(ds.attrs["bin_size_s"])
    rate = ds["responses"].values.astype(np.float32).mean(0) / bin_size  # (neuron, time)
    _, regions = _region_order(ds)
    fig, ax = figure(width=5.5, height=3.5)
    colours = colormaps[CATEGORICAL]
    for k, region in enumerate(regions):
        members = ds["region"].values.astype(str) == region
        ax.plot(
            ds["time"].values,
            rate[members].mean(0),
            color=colours(k % 10),
            label=f"{region} ({int(members.sum())})",
        )
    ax.axvline(0, color="0.5", lw=0.6, ls="--")
    ax.set_xlabel("time from presentation start (s)")
    ax.set_ylabel("mean rate (Hz)")
    ax.set_title(f"{ds.attrs['stimulus_name']}: {ds.sizes['trial']} presentations")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
