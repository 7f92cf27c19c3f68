"""The stimulus rules of AllenSDK's ``EcephysSession``, applied to the ``*_presentations`` tables of
an Allen Visual Coding Neuropixels session (Siegle et al., Nature 2021).

AllenSDK (AllenInstitute/AllenSDK v2.x) is the specification; each function names the AllenSDK
function whose rule it takes, and ``docs/data-model.md`` (Allen section) lists them:

- one presentation table: every ``intervals/*_presentations`` table stacked and sorted by start
  time, ``stimulus_presentation_id`` its row number (``NwbApi.get_stimulus_presentations``);
- ``stimulus_condition_id``: each distinct combination of a presentation's stimulus parameters,
  numbered in order of first appearance (``EcephysSession._build_stimulus_presentations``);
- invalid presentations: those overlapping an ``invalid_times`` interval tagged ``stimulus``
  (``EcephysSession._mask_invalid_stimulus_presentations``, ``_overlap``,
  ``_filter_invalid_times_by_tags``);
- stimulus epochs: runs of consecutive presentations with one ``stimulus_block`` (a missing block,
  as in ``spontaneous_presentations``, is the value "null"; an invalid presentation is a block of
  its own kind) (``EcephysSession.get_stimulus_epochs``, ``nan_intervals``,
  ``is_distinct_from``);
- spike validity: an interval tagged ``all_probes`` invalidates every unit, one tagged with a
  probe's name that probe's units only; other labels (``stimulus``, ``optotagging``) invalidate no
  spikes (``EcephysSession._warn_invalid_spike_intervals``, ``get_lfp``).

The natural movies are aligned per repeat (a repeat starts where the frame number stops
increasing), which AllenSDK leaves to the user (its tables have one row per movie frame).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from neurodag.errors import InputError

NULL = "null"  # AllenSDK's stand-in for a missing parameter (_build_stimulus_presentations)
SPONTANEOUS = "spontaneous"
INVALID_PRESENTATION = "invalid_presentation"  # AllenSDK's name of a masked presentation
STIMULUS_TAG = "stimulus"  # invalid_times label that invalidates the presentations it overlaps
ALL_PROBES_TAG = "all_probes"  # invalid_times label that invalidates every probe's spikes
#: Columns that are not stimulus parameters: AllenSDK leaves them out of the condition
#: (``_build_stimulus_presentations`` drops start/stop/duration/stimulus_block and
#: stimulus_index; ``get_stimulus_presentations`` ignores tags and timeseries), with the columns
#: this module adds.
NOT_PARAMETERS = frozenset(
    {
        "start_time",
        "stop_time",
        "duration",
        "stimulus_block",
        "stimulus_index",
        "tags",
        "timeseries",
        "stimulus_condition_id",
        "invalid_presentation",
        "stimulus_table",
    }
)
#: Natural movies (AllenSDK naming_utilities.GENERIC_MOVIE_RE, unshuffled): aligned per repeat.
MOVIE = re.compile(r"natural_movie_(one|two|three|four|five|six|seven|eight|nine|\d+)")


def check_start_order(table: pd.DataFrame, path: Path, where: str) -> None:
    """A presentation table's start times must not run backwards (in row order)."""
    start = table["start_time"].to_numpy(dtype=float)
    if not np.isfinite(start).all():
        row = int(np.flatnonzero(~np.isfinite(start))[0])
        raise InputError(path, f"{where}/start_time", f"row {row} has no start time")
    back = np.flatnonzero(np.diff(start) < 0)
    if back.size:
        k = int(back[0])
        raise InputError(
            path,
            f"{where}/start_time",
            f"start times run backwards: row {k + 1} starts at {start[k + 1]:g} s, before row "
            f"{k} at {start[k]:g} s",
        )


def merge_presentations(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every table stacked (column ``stimulus_table`` = the table's stimulus name) and sorted by
    start time; the index, ``stimulus_presentation_id``, is the row number (AllenSDK
    ``NwbApi.get_stimulus_presentations``: concat, ``sort_values("start_time")``,
    ``reset_index``). Ties in start time keep table-name order, then row order (AllenSDK's
    unstable sort leaves them unordered; the Allen files have none)."""
    parts = []
    for name in sorted(tables):
        table = tables[name].reset_index(drop=True)
        parts.append(table.assign(stimulus_table=name, _row=np.arange(len(table))))
    if not parts:
        empty = pd.DataFrame({"start_time": [], "stop_time": [], "stimulus_table": []})
        empty.index.name = "stimulus_presentation_id"
        return empty
    merged = pd.concat(parts, ignore_index=True, sort=False)
    merged = merged.sort_values("start_time", kind="stable").reset_index(drop=True)
    merged.index.name = "stimulus_presentation_id"
    return merged


def _canonical(values: np.ndarray) -> list:
    """Parameter values with every missing one (NaN, None, "", "N/A", "null") as ``NULL``."""
    out = []
    for value in values:
        missing_number = isinstance(value, float) and np.isnan(value)
        missing_text = isinstance(value, str) and value.strip() in ("", "N/A", NULL)
        if value is None or missing_number or missing_text:
            out.append(NULL)
        elif isinstance(value, np.generic):
            out.append(value.item())
        else:
            out.append(value)
    return out


def condition_ids(tables: dict[str, pd.DataFrame], merged: pd.DataFrame) -> np.ndarray:
    """AllenSDK's ``stimulus_condition_id`` of every row of ``merged``: the distinct tuples of
    stimulus parameters (every column but ``NOT_PARAMETERS``, ``stimulus_name`` included,
    missing values as "null") numbered 0, 1, ... in order of first appearance over the
    presentations in start-time order (``EcephysSession._build_stimulus_presentations``).

    A table's rows are keyed on that table's own columns; AllenSDK keys on the union of all
    tables' columns, where a column a table lacks is "null" for all its rows, which partitions the
    rows the same way (``stimulus_name`` differs between tables)."""
    keys = np.empty(len(merged), dtype=object)
    for name, table in tables.items():
        rows = np.flatnonzero(merged["stimulus_table"].to_numpy() == name)
        if not rows.size:
            continue
        order = merged["_row"].to_numpy()[rows]
        columns = sorted(c for c in table.columns if c not in NOT_PARAMETERS)
        values = [_canonical(table[c].to_numpy(dtype=object)[order]) for c in columns]
        for k, row in enumerate(rows):
            keys[row] = (name, *(v[k] for v in values))
    ids: dict = {}
    return np.array([ids.setdefault(key, len(ids)) for key in keys], dtype=np.int64)


def tag_lists(tags) -> list[list[str]]:
    """Each invalid interval's tags as a list of text (``[scope, id, label]`` in Allen files)."""
    return [[t.decode() if isinstance(t, bytes) else str(t) for t in row] for row in tags]


def tagged(invalid_times: pd.DataFrame, labels) -> pd.DataFrame:
    """The invalid intervals with any of ``labels`` among their tags (exact match of one tag;
    AllenSDK ``EcephysSession._filter_invalid_times_by_tags``)."""
    labels = set(labels)
    if invalid_times.empty:
        return invalid_times
    hit = [bool(labels.intersection(tags)) for tags in invalid_times["tags"]]
    return invalid_times[np.asarray(hit, dtype=bool)]


def overlapping(start: np.ndarray, stop: np.ndarray, intervals: pd.DataFrame) -> np.ndarray:
    """Which ``[start, stop]`` overlap any interval, both closed: ``max(starts) <= min(stops)``
    (AllenSDK ``ecephys_session._overlap``)."""
    hit = np.zeros(len(start), dtype=bool)
    for lo, hi in zip(intervals["start_time"], intervals["stop_time"], strict=True):
        hit |= np.maximum(start, lo) <= np.minimum(stop, hi)
    return hit


def invalid_presentations(merged: pd.DataFrame, invalid_times: pd.DataFrame) -> np.ndarray:
    """Presentations overlapping an interval tagged ``stimulus`` (AllenSDK
    ``EcephysSession._mask_invalid_stimulus_presentations``, which renames them
    ``invalid_presentation``)."""
    return overlapping(
        merged["start_time"].to_numpy(dtype=float),
        merged["stop_time"].to_numpy(dtype=float),
        tagged(invalid_times, [STIMULUS_TAG]),
    )


def _block_keys(merged: pd.DataFrame, invalid: np.ndarray) -> list:
    """Each presentation's block for the epoch rule: its ``stimulus_block``, "null" where missing
    (a table without the column, as ``spontaneous_presentations``), and one shared marker for
    invalid presentations (AllenSDK masks their block with NaN, distinct from "null")."""
    if "stimulus_block" in merged:
        blocks = _canonical(merged["stimulus_block"].to_numpy(dtype=object))
    else:
        blocks = [NULL] * len(merged)
    return [
        (INVALID_PRESENTATION,) if bad else ("block", b)
        for b, bad in zip(blocks, invalid, strict=True)
    ]


def stimulus_epochs(merged: pd.DataFrame, invalid: np.ndarray | None = None) -> pd.DataFrame:
    """Stimulus epochs (columns ``stimulus``, ``start``, ``stop``, ``stimulus_block``): each run
    of consecutive presentations (start-time order) with one block is an epoch named by its first
    presentation's stimulus (``invalid_presentation`` for a run of invalid ones), from its first
    start to its last stop (AllenSDK ``EcephysSession.get_stimulus_epochs`` with
    ``nan_intervals``). Every row of ``spontaneous_presentations`` is so its own epoch wherever
    other presentations separate the rows, as in every Allen session. AllenSDK's default
    ``duration_thresholds`` ({"spontaneous_activity": 90}) names no stimulus of the files and
    removes nothing; no epoch is removed here."""
    columns = ["stimulus", "start", "stop", "stimulus_block"]
    if len(merged) == 0:
        return pd.DataFrame({c: [] for c in columns})
    invalid = np.zeros(len(merged), dtype=bool) if invalid is None else np.asarray(invalid)
    keys = _block_keys(merged, invalid)
    starts = [0] + [k for k in range(1, len(keys)) if keys[k] != keys[k - 1]]
    ends = [*starts[1:], len(keys)]
    names = merged["stimulus_name"].astype(str).to_numpy()
    start, stop = merged["start_time"].to_numpy(float), merged["stop_time"].to_numpy(float)
    rows = [
        (
            INVALID_PRESENTATION if invalid[a] else names[a],
            start[a],
            stop[b - 1],
            np.nan if keys[a][-1] == NULL or invalid[a] else float(keys[a][-1]),
        )
        for a, b in zip(starts, ends, strict=True)
    ]
    return pd.DataFrame(rows, columns=columns)


def probe_validity(
    invalid_times: pd.DataFrame, probes: list[str], time: np.ndarray, bin_size_s: float
) -> np.ndarray:
    """``valid(probe, time)``: False where the bin ``[t - w/2, t + w/2)`` meets an interval
    (closed) tagged ``all_probes`` or with that probe's name (AllenSDK
    ``EcephysSession._warn_invalid_spike_intervals``, and ``get_lfp``, which masks a probe's
    samples with ``["all_probes", <probe name>]``). Intervals tagged only ``stimulus`` or
    ``optotagging`` leave the spikes valid."""
    lo, hi = time - bin_size_s / 2, time + bin_size_s / 2
    valid = np.ones((len(probes), len(time)), dtype=bool)
    for k, probe in enumerate(probes):
        for a, b in zip(*_bounds(tagged(invalid_times, [ALL_PROBES_TAG, probe])), strict=True):
            valid[k] &= ~((lo <= b) & (hi > a))
    return valid


def _bounds(intervals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if intervals.empty:
        return np.array([]), np.array([])
    return intervals["start_time"].to_numpy(float), intervals["stop_time"].to_numpy(float)


def is_movie(stimulus: str, table: pd.DataFrame) -> bool:
    """A natural movie (one row per frame) that is aligned per repeat: its name is a natural movie
    of AllenSDK's naming (not a shuffled one) and it has a ``frame`` column."""
    return MOVIE.fullmatch(stimulus) is not None and "frame" in table


def movie_repeats(table: pd.DataFrame) -> pd.DataFrame:
    """One row per repeat of a movie table (rows per frame, in start order): a repeat starts at
    the first row, where the frame number does not increase, or where ``stimulus_block``
    changes. The repeat keeps its first row's columns (its id is that row's
    ``stimulus_presentation_id``, its ``stimulus_condition_id`` that of its first frame, the same
    for every repeat of the movie), its last row's ``stop_time``, ``first_frame``, ``n_frames``,
    and is invalid when any of its frames is."""
    if table.empty:
        return table
    frame = pd.to_numeric(table["frame"], errors="coerce").to_numpy(dtype=float)
    new = np.ones(len(table), dtype=bool)
    new[1:] = ~(frame[1:] > frame[:-1])
    if "stimulus_block" in table:
        block = table["stimulus_block"].astype(str).to_numpy()
        new[1:] |= block[1:] != block[:-1]
    repeat = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    last = np.append(first[1:], len(table)) - 1
    out = table.iloc[first].copy()
    out["stop_time"] = table["stop_time"].to_numpy()[last]
    out["first_frame"] = table["frame"].to_numpy()[first]
    out["n_frames"] = np.bincount(repeat)
    if "invalid_presentation" in table:
        out["invalid_presentation"] = np.bincount(
            repeat, weights=table["invalid_presentation"].to_numpy(dtype=float)
        ).astype(bool)
    return out.drop(columns=["frame"])


def condition_labels(table: pd.DataFrame) -> np.ndarray:
    """A readable label of each row's condition: the parameters that vary within the table,
    ``name=value`` joined by ", " (``stimulus_name`` when none varies)."""
    columns = [
        c
        for c in sorted(table.columns)
        if c not in NOT_PARAMETERS and c not in ("stimulus_name", "_row", "first_frame", "n_frames")
    ]
    values = {c: _canonical(table[c].to_numpy(dtype=object)) for c in columns}
    varying = [c for c in columns if len(set(map(str, values[c]))) > 1]
    if not varying:
        return table["stimulus_name"].astype(str).to_numpy()
    return np.array(
        [", ".join(f"{c}={values[c][k]}" for c in varying) for k in range(len(table))], dtype=str
    )
