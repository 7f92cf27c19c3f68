"""Reader for the parquet export of the homogenized C. elegans collection (format
``homogenized-parquet``).

Simeon et al., "Homogenized C. elegans Neural Activity and Connectivity Data": the published
collection is also distributed as a table with one row per (worm, neuron), columns ``worm``,
``dataset``, ``neuron``, ``slot``, ``is_labeled_neuron``, ``calcium_data`` (array over time) and
``time_in_seconds`` (array), among others. A recording is one (dataset, worm) pair, named
``<dataset>-<worm>``. Its traces are read back as raw traces (they are re-homogenized with this
pipeline's parameters); unlabelled rows become unlabelled ROIs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurodag.errors import InputError
from neurodag.io.celegans_nwb import CalciumRecording

REQUIRED = ("worm", "dataset", "neuron", "is_labeled_neuron", "calcium_data", "time_in_seconds")


def _table(files: list[Path], columns=None):
    import pandas as pd

    frames = []
    import pyarrow.parquet as pq

    for path in files:
        try:
            names = pq.read_schema(path).names
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise InputError(path, None, f"not a readable parquet file ({exc})") from exc
        missing = [c for c in (columns or REQUIRED) if c not in names]
        if missing:
            raise InputError(path, "columns", f"missing column(s) {missing}")
        frame = pd.read_parquet(path, columns=columns)
        frame["_file"] = str(path)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _name(dataset, worm) -> str:
    return f"{dataset}-{worm}"


def parquet_recordings(files: list[Path]) -> list[str]:
    table = _table(files, columns=["worm", "dataset"])
    return sorted({_name(d, w) for d, w in zip(table["dataset"], table["worm"], strict=True)})


def read_parquet_recording(files: list[Path], recording: str):
    """One (dataset, worm) of the table as a CalciumRecording, and its rows' labelled flags."""
    table = _table(files)
    rows = table[
        [_name(d, w) == recording for d, w in zip(table["dataset"], table["worm"], strict=True)]
    ]
    if rows.empty:
        raise InputError(files[0], "worm", f"no rows for recording {recording!r}")
    source = rows["_file"].iloc[0]
    series = [np.asarray(v, dtype=np.float64).ravel() for v in rows["calcium_data"]]
    lengths = {s.size for s in series}
    if len(lengths) != 1:
        raise InputError(
            source, "calcium_data", f"{recording}: traces of lengths {sorted(lengths)}"
        )
    times = np.asarray(rows["time_in_seconds"].iloc[0], dtype=np.float64).ravel()
    if times.size != series[0].size:
        raise InputError(
            source, "time_in_seconds", f"{times.size} times for {series[0].size} frames"
        )
    labeled = [bool(v) for v in rows["is_labeled_neuron"]]
    labels = [str(n) if flag else "" for n, flag in zip(rows["neuron"], labeled, strict=True)]
    recording_data = CalciumRecording(
        traces=np.stack(series, axis=1),
        timestamps=times,
        labels=labels,
        identifier=recording,
        description="homogenized C. elegans collection (parquet export)",
    )
    return recording_data, labeled
