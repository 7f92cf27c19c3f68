"""C. elegans calcium datasets: which recordings a dataset has, and reading one into the contract.

The ingest contract (``docs/data-model.md``): one file per recording with ``activity(worm, time,
neuron)`` over the 300 canonical neurons (NaN where not recorded or not confidently labelled),
``labeled(worm, neuron)``, ``valid_length(worm)``, and every trace without a trusted canonical label
in ``unlabeled_activity(worm, time, roi)`` with its raw label in ``roi_label(worm, roi)``;
``segment(worm, time)`` numbers the runs of frames acquired back to back (a recording with skipped
frames has several) and ``behavior(worm, time, variable)`` holds the reader's behaviour with the
units as JSON in its ``units`` attribute.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurodag.errors import InputError
from neurodag.io.celegans_nwb import CalciumRecording
from neurodag.io.paths import resolve_files
from neurodag.neurons import canonical_neurons

log = logging.getLogger(__name__)


def file_recordings(spec: Mapping[str, Any], suffixes: tuple[str, ...]) -> list[str]:
    """Recordings of a one-file-per-worm format: the files' stems."""
    return [_stem(p, spec["format"]) for p in resolve_files(spec["path"], suffixes)]


def simulated_recordings(spec: Mapping[str, Any], suffixes: tuple[str, ...]) -> list[str]:
    """The worms ``neurodag simulate celegans`` writes for the (validated) dataset entry."""
    return [f"worm{w:03d}" for w in range(int(spec["simulate"]["n_worms"]))]


def parquet_recordings(spec: Mapping[str, Any], suffixes: tuple[str, ...]) -> list[str]:
    from neurodag.io.homogenized_parquet import parquet_recordings as recordings

    return recordings(resolve_files(spec["path"], suffixes))


def _stem(path: Path, fmt: str) -> str:
    # Dag et al. name files YYYY-MM-DD-NN-data.h5; the recording is YYYY-MM-DD-NN.
    name = path.stem
    if fmt == "dag2023-h5" and name.endswith("-data"):
        name = name[: -len("-data")]
    return name


# ---------------------------------------------------------------- one recording -> the contract

UNCERTAIN_MARKS = ("?", "-alt", "_alt")


def assign_labels(
    labels: list[str],
    confidence: list[float] | None = None,
    min_confidence: float | None = None,
    source: str | Path | None = None,
) -> tuple[list[str | None], list[str]]:
    """Decide, per ROI, the canonical slot it fills (or None) and why not.

    Flags: ``""`` (trusted, in a canonical slot), ``unlabeled``, ``uncertain`` (``?``, ``-alt``, or
    confidence below ``min_confidence``), ``not_canonical`` (a class name such as ``IL2`` or a
    non-neuron), ``duplicate`` (another ROI with the same name has higher confidence, or came
    first). Uncertain labels are flagged, never trusted.
    """
    from neurodag.neurons import map_names

    cleaned = [str(label).strip() for label in labels]
    mapping, report = map_names([c for c in cleaned if c and not _uncertain(c)])
    if report.unknown or report.non_neuronal:
        log.info("%s: labels that are not canonical neurons: %s", source, report.summary())
    slots: list[str | None] = [None] * len(cleaned)
    flags = [""] * len(cleaned)
    best: dict[str, int] = {}
    for k, label in enumerate(cleaned):
        if not label or label.lower() == "nan":
            flags[k] = "unlabeled"
        elif _uncertain(label) or (
            confidence is not None
            and min_confidence is not None
            and not confidence[k] >= min_confidence
        ):
            flags[k] = "uncertain"
        elif mapping.get(label) is None:
            flags[k] = "not_canonical"
        else:
            name = mapping[label]
            other = best.get(name)
            score = confidence[k] if confidence is not None else 0.0
            if other is None or (confidence is not None and score > confidence[other]):
                if other is not None:
                    slots[other], flags[other] = None, "duplicate"
                best[name] = k
                slots[k] = name
            else:
                flags[k] = "duplicate"
    return slots, flags


def _uncertain(label: str) -> bool:
    return any(mark in label for mark in UNCERTAIN_MARKS)


def repair_nan_gaps(
    traces: np.ndarray, max_gap: int, source: str | Path, roi_names: list[str]
) -> tuple[np.ndarray, int]:
    """Linearly interpolate NaN runs of at most ``max_gap`` frames (edges: nearest value).

    A longer run is an InputError naming the file and ROI. Returns the repaired traces and the
    number of frames filled.
    """
    traces = np.array(traces, dtype=np.float64, copy=True)
    filled = 0
    for k in np.flatnonzero(np.isnan(traces).any(axis=0)):
        column = traces[:, k]
        missing = np.isnan(column)
        if missing.all():
            raise InputError(source, f"ROI {roi_names[k]}", "trace is all NaN")
        edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        longest = int((stops - starts).max())
        if longest > max_gap:
            raise InputError(
                source,
                f"ROI {roi_names[k]}",
                f"a NaN run of {longest} frames (frame {starts[np.argmax(stops - starts)]}); "
                f"runs of up to {max_gap} frames are interpolated "
                "(stages.ingest.celegans.max_nan_gap_frames)",
            )
        frames = np.arange(column.size)
        column[missing] = np.interp(frames[missing], frames[~missing], column[~missing])
        filled += int(missing.sum())
    return traces, filled


def check_timestamps(timestamps: np.ndarray, source: str | Path, field: str) -> np.ndarray:
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if timestamps.ndim != 1 or timestamps.size < 2:
        raise InputError(source, field, f"expected at least 2 timestamps, got {timestamps.shape}")
    if not np.all(np.isfinite(timestamps)):
        raise InputError(source, field, "timestamps contain NaN or infinity")
    steps = np.diff(timestamps)
    if not np.all(steps > 0):
        bad = int(np.flatnonzero(steps <= 0)[0])
        raise InputError(
            source,
            field,
            f"timestamps are not strictly increasing (frame {bad + 1}: "
            f"{timestamps[bad + 1]} after {timestamps[bad]})",
        )
    return timestamps


def recording_dataset(
    recording: CalciumRecording,
    name: str,
    source: str | Path,
    *,
    confidence: list[float] | None = None,
    min_confidence: float | None = None,
    max_nan_gap: int = 5,
) -> xr.Dataset:
    """One recording in the ingest contract (a ``worm`` dimension of length 1)."""
    timestamps = check_timestamps(recording.timestamps, source, "timestamps")
    traces = np.asarray(recording.traces)
    if traces.ndim != 2 or traces.shape[0] != timestamps.size:
        raise InputError(
            source, "traces", f"shape {traces.shape} does not match {timestamps.size} timestamps"
        )
    roi_names = [label or f"#{k}" for k, label in enumerate(recording.labels)]
    traces, filled = repair_nan_gaps(traces, max_nan_gap, source, roi_names)
    if filled:
        log.warning("%s: interpolated %d NaN frames in short gaps", source, filled)
    slots, flags = assign_labels(recording.labels, confidence, min_confidence, source)
    neurons = canonical_neurons()
    index = {n: i for i, n in enumerate(neurons)}
    n_time = timestamps.size
    activity = np.full((1, n_time, len(neurons)), np.nan, dtype=np.float32)
    labeled = np.zeros((1, len(neurons)), dtype=bool)
    rest = [k for k, slot in enumerate(slots) if slot is None]
    for k, slot in enumerate(slots):
        if slot is not None:
            activity[0, :, index[slot]] = traces[:, k]
            labeled[0, index[slot]] = True
    counts = {flag: flags.count(flag) for flag in sorted(set(flags)) if flag}
    log.info(
        "%s: %d ROIs, %d in canonical slots, kept apart: %s",
        source,
        len(slots),
        int(labeled.sum()),
        counts or "none",
    )
    time = timestamps - timestamps[0]
    ds = xr.Dataset(
        {
            "activity": (("worm", "time", "neuron"), activity),
            "labeled": (("worm", "neuron"), labeled),
            "valid_length": ("worm", np.array([n_time], dtype=np.int64)),
            "unlabeled_activity": (
                ("worm", "time", "roi"),
                traces[None][:, :, rest].astype(np.float32),
            ),
            "roi_label": (
                ("worm", "roi"),
                np.array([[recording.labels[k] for k in rest]], dtype=object),
            ),
            "roi_flag": (("worm", "roi"), np.array([[flags[k] for k in rest]], dtype=object)),
            "roi_index": (("worm", "roi"), np.array([rest], dtype=np.int64)),
            "timestamp_start": ("worm", np.array([timestamps[0]])),
        },
        coords={"worm": [name], "time": time, "neuron": list(neurons), "roi": np.arange(len(rest))},
        attrs={"description": f"C. elegans recording {name}", "source_file": str(source)},
    )
    ds["time"].attrs["units"] = "s"
    ds["roi_index"].attrs["description"] = "column of the trace in the source file"
    ds["roi_flag"].attrs["description"] = "why the trace is not in a canonical slot"
    segment = np.zeros(n_time, dtype=np.int64)
    if recording.segment is not None:
        segment = np.asarray(recording.segment, dtype=np.int64)
        if segment.shape != (n_time,) or np.any(np.diff(segment) < 0):
            raise InputError(source, "segment", "expected one non-decreasing number per frame")
    ds["segment"] = (("worm", "time"), segment[None])
    ds["segment"].attrs["description"] = (
        "frames of one segment were acquired back to back; between segments frames were "
        "skipped (a gap in time, never interpolated over)"
    )
    if recording.behaviour:
        ds["behavior"] = behaviour_array(recording, source, n_time)
    if recording.epochs:
        stimulus = np.full(n_time, "", dtype=object)
        for start, stop, label in recording.epochs:
            stimulus[(timestamps >= start) & (timestamps < stop)] = label
        ds["stimulus"] = (("worm", "time"), stimulus[None])
    return ds


def behaviour_array(recording: CalciumRecording, source: str | Path, n_time: int) -> xr.DataArray:
    """``behavior(worm, time, variable)`` with the units of each variable (JSON) in its attrs."""
    import json

    names = list(recording.behaviour)
    for name in names:
        shape = np.shape(recording.behaviour[name])
        if shape != (n_time,):
            raise InputError(
                source, f"behavior/{name}", f"shape {shape}: expected one value per frame"
            )
    values = np.stack([np.asarray(recording.behaviour[n], dtype=np.float64) for n in names], 1)
    units = {n: recording.behaviour_units.get(n, "") for n in names}
    return xr.DataArray(
        values[None],
        dims=("worm", "time", "variable"),
        coords={"variable": names},
        attrs={
            "units": json.dumps(units),
            "description": "per-frame behaviour; units: JSON {variable: unit}",
        },
    )


def read_nwb_recording(
    spec: Mapping[str, Any], recording: str, files: list[Path], parameters: Mapping[str, Any]
) -> xr.Dataset:
    from neurodag.io.celegans_nwb import read_celegans_nwb

    rec = read_celegans_nwb(files[0], behaviour=parameters["behavior"])
    return recording_dataset(rec, recording, files[0], max_nan_gap=parameters["max_nan_gap_frames"])


def read_dag2023_recording(
    spec: Mapping[str, Any], recording: str, files: list[Path], parameters: Mapping[str, Any]
) -> xr.Dataset:
    from neurodag.io.dag2023 import read_dag2023

    rec, confidence = read_dag2023(
        files[0], files[1] if len(files) > 1 else None, behaviour=parameters["behavior"]
    )
    return recording_dataset(
        rec,
        recording,
        files[0],
        confidence=confidence,
        min_confidence=parameters["min_label_confidence"],
        max_nan_gap=parameters["max_nan_gap_frames"],
    )


def read_parquet_recording(
    spec: Mapping[str, Any], recording: str, files: list[Path], parameters: Mapping[str, Any]
) -> xr.Dataset:
    from neurodag.io.homogenized_parquet import read_parquet_recording as read

    if parameters["behavior"]:
        raise InputError(
            files[0],
            f"behavior/{parameters['behavior'][0]}",
            "missing: the homogenized parquet collection holds no behaviour "
            "(stages.ingest.celegans.behavior names it)",
        )
    rec, _ = read(files, recording)
    return recording_dataset(rec, recording, files[0], max_nan_gap=parameters["max_nan_gap_frames"])


def recording_file(
    spec: Mapping[str, Any], recording: str, suffixes: tuple[str, ...]
) -> list[Path]:
    """The one file of a recording of a one-file-per-worm format."""
    files = [
        p for p in resolve_files(spec["path"], suffixes) if _stem(p, spec["format"]) == recording
    ]
    if not files:
        raise InputError(spec["path"], "path", f"no file for recording {recording!r}")
    return files


def dag2023_files(spec: Mapping[str, Any], recording: str, suffixes: tuple[str, ...]) -> list[Path]:
    """The HDF5 file of a Dag et al. recording, then its NeuroPAL label spreadsheet if any."""
    files = recording_file(spec, recording, suffixes)
    folder = Path(spec["labels"]) if spec.get("labels") else files[0].parent / "labels"
    sheet = folder / f"{recording} Neuron ID.xlsx"
    if sheet.exists():
        files.append(sheet)
    else:
        log.info("%s: no label spreadsheet %s; the worm is ingested unlabelled", recording, sheet)
    return files


def all_files(spec: Mapping[str, Any], recording: str | None, suffixes: tuple[str, ...]):
    """Every file of the dataset (one table holds all recordings)."""
    return resolve_files(spec["path"], suffixes)
