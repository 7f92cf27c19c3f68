"""Reader for the Flavell-lab HDF5 layout of Dag et al. 2023 (config format ``dag2023-h5``).

Dag et al. 2023, "Dissecting the functional organization of the C. elegans serotonergic system at
whole-brain scale", Cell: one ``YYYY-MM-DD-NN-data.h5`` per worm, written from Julia (h5py sees
arrays as time x neuron):

- ``gcamp/trace_array_original`` (time, roi): ratiometric GCaMP traces (the z-scored
  ``trace_array`` would be z-scored twice by homogenize); ``timing/timestamp_confocal`` (s), one per
  confocal volume;
- ``gcamp/idx_splits`` (2, n): 1-based, inclusive ``[start; stop]`` ranges of confocal volumes;
  the trace frames are those ranges concatenated in order, so trace frame ``k`` was imaged at the
  timestamp of its volume. Volumes between two ranges were not traced: a gap in time, kept as a
  gap (``CalciumRecording.segment`` numbers the runs of back-to-back volumes). Absent: one trace
  frame per timestamp;
- ``behavior/*`` (one value per trace frame): ``velocity`` (mm/s, negative when reversing),
  ``head_angle`` (rad), ``angular_velocity`` (rad/s), ``pumping`` (pumps/s; all NaN where not
  scored), ``worm_curvature`` (rad), ``reversal_vec`` (0/1) and ``reversal_events`` (2, n): first
  and last trace frame (1-based, inclusive) of each reversal. In the lab's files an event's first
  frame is the last forward frame before ``reversal_vec`` switches on (the first frame of the
  recording excepted), so an event ``[a; b]`` agrees with the 0/1 series when the series is 1 on
  ``a+1..b`` (``a..b`` when ``a`` is 1) and 0 outside every event; the reader checks that;
- ``neuropal_registration/roi_match`` (n_roi,): NeuroPAL ROI k (1-based) is trace column
  ``roi_match[k-1] - 1``; 0 means unmatched.

NeuroPAL identities come from ``labels/<recording> Neuron ID.xlsx``: the ``(1st audit)`` sheet if
there is one, else the newest ``labels v<N>`` sheet; columns ``Neuron Class``, ``ROI ID``,
``Confidence``. A worm without a spreadsheet (a strain without NeuroPAL) is read unlabelled.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import h5py
import numpy as np

from neurodag.errors import InputError
from neurodag.io.celegans_nwb import CalciumRecording

log = logging.getLogger(__name__)

TRACES = "gcamp/trace_array_original"
TIMESTAMPS = "timing/timestamp_confocal"
ROI_MATCH = "neuropal_registration/roi_match"
IDX_SPLITS = "gcamp/idx_splits"
REVERSAL_VEC = "behavior/reversal_vec"
REVERSAL_EVENTS = "behavior/reversal_events"
# The behaviour read by default, with units; ``reversal`` is the 0/1 series of reversal_vec
# (or, in a file without one, of reversal_events: 1 on a+1..b of each event [a; b], a..b if a is 1).
BEHAVIOUR_UNITS = {
    "velocity": "mm/s",
    "head_angle": "rad",
    "angular_velocity": "rad/s",
    "pumping": "pumps/s",
    "worm_curvature": "rad",
    "reversal": "1",
}
LABEL_COLUMNS = ("Neuron Class", "ROI ID", "Confidence")


def label_sheet(sheet_names: list[str], path: Path) -> str:
    """The audited labels sheet if there is one, else the newest ``labels v<N>``."""
    audited = [s for s in sheet_names if "1st audit" in s]
    if audited:
        return audited[0]
    versions = [(int(m.group(1)), s) for s in sheet_names if (m := re.match(r"labels v(\d+)", s))]
    if not versions:
        raise InputError(
            path, "sheet", f"no '(1st audit)' or 'labels v<N>' sheet (sheets: {sheet_names})"
        )
    return max(versions)[1]


def read_labels(path: Path, n_traces: int, roi_match: np.ndarray):
    """Label and confidence of each trace column ('' / NaN where none)."""
    import pandas as pd

    try:
        book = pd.ExcelFile(path)
    except Exception as exc:  # openpyxl raises several types for a corrupt workbook
        raise InputError(path, None, f"not a readable .xlsx spreadsheet ({exc})") from exc
    sheet = label_sheet(book.sheet_names, path)
    table = pd.read_excel(book, sheet_name=sheet)
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in LABEL_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"sheet {sheet!r}", f"missing column(s) {missing}")
    labels = [""] * n_traces
    confidence = [np.nan] * n_traces
    unmatched = 0
    for _, row in table.dropna(subset=["Neuron Class", "ROI ID"]).iterrows():
        roi = int(row["ROI ID"])
        if not 1 <= roi <= roi_match.size:
            raise InputError(path, f"sheet {sheet!r}, ROI ID", f"{roi} outside 1..{roi_match.size}")
        column = int(roi_match[roi - 1]) - 1
        if column < 0:
            unmatched += 1
            continue
        if column >= n_traces:
            raise InputError(path, ROI_MATCH, f"ROI {roi} matches trace {column + 1} > {n_traces}")
        label = str(row["Neuron Class"]).strip()
        score = float(row["Confidence"]) if np.isfinite(row["Confidence"]) else np.nan
        if labels[column] and not score > confidence[column]:
            continue  # two NeuroPAL ROIs on one trace: keep the more confident label
        labels[column], confidence[column] = label, score
    log.info(
        "%s: sheet %r, %d labels, %d on unmatched ROIs", path.name, sheet, len(table), unmatched
    )
    return labels, confidence


def trace_frames(splits: np.ndarray, n_frames: int, n_timestamps: int, path: Path):
    """Confocal volume (0-based) and segment number of each trace frame, from ``idx_splits``.

    ``splits`` is (2, n) of 1-based inclusive ``[start; stop]`` ranges; ranges that follow each
    other without a skipped volume share a segment.
    """
    splits = np.asarray(splits)
    if splits.ndim == 1 and splits.size == 2:
        splits = splits.reshape(2, 1)
    if splits.ndim != 2 or splits.shape[0] != 2 or splits.shape[1] == 0:
        raise InputError(path, IDX_SPLITS, f"expected a 2 x n array of ranges, got {splits.shape}")
    if splits.dtype.kind not in "iu":
        if splits.dtype.kind != "f" or not np.all(
            np.isfinite(splits) & (splits == np.round(splits))
        ):
            raise InputError(path, IDX_SPLITS, f"expected integer frame numbers ({splits.dtype})")
        splits = splits.astype(np.int64)
    starts, stops = splits[0].astype(np.int64), splits[1].astype(np.int64)
    for k, (a, b) in enumerate(zip(starts, stops, strict=True)):
        if a < 1 or b < a:
            raise InputError(path, IDX_SPLITS, f"range {k + 1} [{a}; {b}]: start after stop or < 1")
        if b > n_timestamps:
            raise InputError(
                path,
                IDX_SPLITS,
                f"range {k + 1} [{a}; {b}] runs past the {n_timestamps} confocal timestamps "
                f"({TIMESTAMPS})",
            )
        if k and a <= stops[k - 1]:
            raise InputError(
                path,
                IDX_SPLITS,
                f"range {k + 1} [{a}; {b}] overlaps or precedes range {k} "
                f"[{starts[k - 1]}; {stops[k - 1]}]",
            )
    covered = int((stops - starts + 1).sum())
    if covered != n_frames:
        raise InputError(
            path,
            IDX_SPLITS,
            f"the ranges cover {covered} frames but {TRACES} has {n_frames}",
        )
    volume = np.concatenate([np.arange(a - 1, b) for a, b in zip(starts, stops, strict=True)])
    segment = np.concatenate([[0], np.cumsum(np.diff(volume) > 1)]).astype(np.int64)
    return volume, segment


def reversal_series(f: h5py.File, n_frames: int, path: Path) -> np.ndarray | None:
    """The 0/1 reversal series, checked against the event table where the file has both."""
    vec = None
    if REVERSAL_VEC in f:
        vec = np.asarray(f[REVERSAL_VEC][:])
        if vec.shape != (n_frames,):
            raise InputError(
                path, REVERSAL_VEC, f"shape {vec.shape}, the traces have {n_frames} frames"
            )
        if not np.all(np.isin(vec, (0, 1))):
            raise InputError(path, REVERSAL_VEC, "values other than 0 and 1")
        vec = vec.astype(np.float64)
    if REVERSAL_EVENTS not in f:
        return vec
    events = np.asarray(f[REVERSAL_EVENTS][:])
    if events.size == 0:
        events = np.zeros((2, 0), dtype=np.int64)
    if events.ndim != 2 or events.shape[0] != 2:
        raise InputError(path, REVERSAL_EVENTS, f"expected a 2 x n array, got {events.shape}")
    if events.dtype.kind not in "iu" and not np.all(events == np.round(events)):
        raise InputError(path, REVERSAL_EVENTS, "frame numbers are not integers")
    events = events.astype(np.int64)
    for k, (a, b) in enumerate(events.T):
        if a > b:
            raise InputError(
                path, REVERSAL_EVENTS, f"event {k + 1} starts ({a}) after its stop ({b})"
            )
        if a < 1 or b > n_frames:
            raise InputError(
                path,
                REVERSAL_EVENTS,
                f"event {k + 1} [{a}; {b}] outside the frames 1..{n_frames}",
            )
    if vec is None:  # the lab's convention, as reversal_vec would have it
        vec = np.zeros(n_frames)
        for a, b in events.T:
            vec[(a if a > 1 else 0) : b] = 1.0
        return vec
    # agreement: 1 on a+1..b (a..b when a is 1) of every event, 0 outside every event
    inside = np.zeros(n_frames, dtype=bool)
    for k, (a, b) in enumerate(events.T):
        on = vec[(a if a > 1 else 0) : b]
        if not on.all():
            raise InputError(
                path,
                REVERSAL_EVENTS,
                f"event {k + 1} [{a}; {b}] disagrees with {REVERSAL_VEC} (0 on frame "
                f"{(a if a > 1 else 0) + int(np.argmin(on)) + 1})",
            )
        inside[a - 1 : b] = True
    stray = np.flatnonzero((vec == 1) & ~inside)
    if stray.size:
        raise InputError(
            path,
            REVERSAL_EVENTS,
            f"{REVERSAL_VEC} is 1 on frame {stray[0] + 1}, which no reversal event holds",
        )
    return vec


def read_behaviour(
    f: h5py.File, n_frames: int, path: Path, names: list[str] | None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Per-frame behaviour: ``names`` (each must be in the file), or every default one present."""
    wanted = list(BEHAVIOUR_UNITS) if names is None else list(names)
    values, units = {}, {}
    for name in wanted:
        if name == "reversal":
            series = reversal_series(f, n_frames, path)
            if series is None:
                if names is not None:
                    raise InputError(
                        path,
                        REVERSAL_VEC,
                        "missing (nor reversal_events), but stages.ingest.celegans.behavior "
                        "names 'reversal'",
                    )
                log.info("%s: no reversal_vec or reversal_events", path.name)
                continue
        else:
            key = f"behavior/{name}"
            if key not in f or not isinstance(f[key], h5py.Dataset):
                if names is not None:
                    raise InputError(
                        path, key, "missing, but stages.ingest.celegans.behavior names it"
                    )
                log.info("%s: no %s", path.name, key)
                continue
            series = np.asarray(f[key][:])
            if series.shape != (n_frames,):
                raise InputError(
                    path,
                    key,
                    f"shape {series.shape}: expected one value per trace frame ({n_frames},)",
                )
            if series.dtype.kind not in "biuf":
                raise InputError(path, key, f"not numeric ({series.dtype})")
            series = series.astype(np.float64)
        values[name] = series
        units[name] = BEHAVIOUR_UNITS.get(name, "")
    return values, units


def read_dag2023(
    path: str | Path,
    labels_path: str | Path | None = None,
    behaviour: list[str] | None = None,
):
    """One worm: its CalciumRecording and per-trace label confidence (None if unlabelled).

    ``behaviour``: the ``behavior/*`` variables to read (each must be in the file); None reads
    every one of ``BEHAVIOUR_UNITS`` that the file has.
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise InputError(path, None, f"not a readable HDF5 file ({exc})") from exc
    try:
        with f:
            for key in (TRACES, TIMESTAMPS):
                if key not in f:
                    raise InputError(path, key, "missing dataset")
            traces = np.asarray(f[TRACES][:], dtype=np.float64)
            timestamps = np.asarray(f[TIMESTAMPS][:], dtype=np.float64)
            if traces.ndim != 2:
                raise InputError(path, TRACES, f"expected (time, roi), got {traces.shape}")
            segment = None
            if IDX_SPLITS in f:
                volume, segment = trace_frames(
                    f[IDX_SPLITS][:], traces.shape[0], timestamps.size, path
                )
                timestamps = timestamps[volume]
            elif traces.shape[0] != timestamps.size:
                raise InputError(
                    path,
                    TRACES,
                    f"shape {traces.shape} vs {timestamps.size} timestamps and no {IDX_SPLITS}",
                )
            roi_match = np.asarray(f[ROI_MATCH][:]) if ROI_MATCH in f else None
            values, units = read_behaviour(f, traces.shape[0], path, behaviour)
    except (OSError, KeyError) as exc:
        raise InputError(path, None, f"corrupt or truncated HDF5 file ({exc})") from exc
    labels, confidence = [""] * traces.shape[1], None
    if labels_path is not None:
        if roi_match is None:
            raise InputError(path, ROI_MATCH, "missing: cannot map NeuroPAL labels to traces")
        labels, confidence = read_labels(Path(labels_path), traces.shape[1], roi_match)
    recording = CalciumRecording(
        traces=traces,
        timestamps=timestamps,
        labels=labels,
        identifier=path.stem,
        behaviour=values,
        behaviour_units=units,
        segment=segment,
        description="Dag et al. 2023 whole-brain GCaMP recording",
    )
    return recording, confidence
