"""Reader for the Flavell-lab HDF5 layout of Dag et al. 2023 (config format ``dag2023-h5``).

Dag et al. 2023, "Dissecting the functional organization of the C. elegans serotonergic system at
whole-brain scale", Cell: one ``YYYY-MM-DD-NN-data.h5`` per worm, written from Julia (h5py sees
arrays as time x neuron):

- ``gcamp/trace_array_original`` (time, roi): ratiometric GCaMP traces (the z-scored
  ``trace_array`` would be z-scored twice by homogenize); ``timing/timestamp_confocal`` (s);
- ``behavior/*``: velocity, head_angle, pumping, angular_velocity (time,), and
  ``reversal_events`` (2, n): first and last frame (1-based) of each reversal;
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
BEHAVIOUR = ("velocity", "head_angle", "pumping", "angular_velocity")
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
    table = book.parse(sheet)
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


def read_dag2023(path: str | Path, labels_path: str | Path | None = None):
    """One worm: its CalciumRecording and per-trace label confidence (None if unlabelled)."""
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
            roi_match = np.asarray(f[ROI_MATCH][:]) if ROI_MATCH in f else None
            behaviour = {
                key: np.asarray(f[f"behavior/{key}"][:], dtype=np.float64)
                for key in BEHAVIOUR
                if f"behavior/{key}" in f and f[f"behavior/{key}"].shape == (traces.shape[0],)
            }
            if "behavior/reversal_events" in f:
                events = np.asarray(f["behavior/reversal_events"][:]).reshape(2, -1)
                reversing = np.zeros(traces.shape[0])
                for first, last in events.T:
                    reversing[max(int(first) - 1, 0) : int(last)] = 1.0
                behaviour["reversing"] = reversing
    except (OSError, KeyError) as exc:
        raise InputError(path, None, f"corrupt or truncated HDF5 file ({exc})") from exc
    if traces.ndim != 2 or traces.shape[0] != timestamps.size:
        raise InputError(path, TRACES, f"shape {traces.shape} vs {timestamps.size} timestamps")
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
        behaviour=behaviour,
        description="Dag et al. 2023 whole-brain GCaMP recording",
    )
    return recording, confidence
