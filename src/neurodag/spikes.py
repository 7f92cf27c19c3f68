"""Binning spike trains without per-unit Python loops.

Spike trains are kept the way NWB stores them (a ragged column): one flat array of spike times,
unit after unit, and ``index`` with the end offset of each unit's spikes (``index[u - 1]:index[u]``
are unit ``u``'s spikes). Every spike's unit follows from its position with one ``searchsorted``
on ``index``, its bin from one subtraction and floor, and the counts of many units at once from one
``np.bincount`` over ``unit * n_bins + bin``. Work is done in groups of consecutive units (their
spikes are contiguous in the flat array) so the temporary arrays stay a bounded size whatever the
session's length: a session of thousands of units and tens of millions of spikes bins in a few
passes of vectorised numpy.

Trial alignment (peri-stimulus counts) finds each spike's trial with a ``searchsorted`` on the
sorted window starts. A spike can fall in several windows when windows overlap (a window longer
than the inter-trial interval): the trials are then split into ``L`` interleaved layers whose
windows do not overlap, and each layer takes one pass.
"""

from __future__ import annotations

import numpy as np

from neurodag.errors import ConfigError

#: Upper bound on the elements of the temporary bincount array of one unit group: small enough
#: (8 MiB) that the allocator reuses it between groups instead of mapping fresh pages.
GROUP_ELEMENTS = 1 << 20
#: Upper bound on the spikes of one unit group (its per-spike temporaries: ~8 arrays of 8 MiB).
GROUP_SPIKES = 1 << 20


def check_index(index: np.ndarray, n_spikes: int) -> str | None:
    """Why a ragged ``index`` does not fit a data array of ``n_spikes`` values (None if it does)."""
    index = np.asarray(index)
    if index.ndim != 1:
        return f"must be one-dimensional, has shape {index.shape}"
    if index.size == 0:
        return None
    if index[0] < 0 or np.any(np.diff(index) < 0):
        return "offsets must be non-negative and non-decreasing"
    if index[-1] > n_spikes:
        return f"last offset {int(index[-1])} runs past the {n_spikes} spike times stored"
    return None


def unit_of_spikes(index: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The unit (row of ``index``) that the spikes at flat ``positions`` belong to."""
    return np.searchsorted(index, positions, side="right")


def _unit_groups(index: np.ndarray, elements_per_unit: int, max_groups: int | None = None):
    """Consecutive unit ranges ``(first, last)`` whose bincount has at most GROUP_ELEMENTS, or
    with ``max_groups``, at most that many groups (where a unit's own bincount is large, as for
    thousands of trials, the temporary array is then a fraction of the output instead of one
    pass per unit); a group also holds at most GROUP_SPIKES spikes (unless one unit has more),
    which bounds the per-spike temporaries (a real session's units fire 1e4-1e5 spikes each)."""
    n_units = len(index)
    budget = GROUP_ELEMENTS
    if max_groups:
        budget = max(budget, elements_per_unit * -(-n_units // max_groups))
    per_group = max(1, budget // max(1, elements_per_unit))
    ends = np.asarray(index, dtype=np.int64)
    first = 0
    while first < n_units:
        last = min(n_units, first + per_group)
        start = int(ends[first - 1]) if first else 0
        # the most units from ``first`` whose spikes fit GROUP_SPIKES (at least one)
        fit = int(np.searchsorted(ends[first:last], start + GROUP_SPIKES, side="right"))
        last = first + max(1, fit)
        yield first, last
        first = last


def _segment(index: np.ndarray, first: int, last: int) -> tuple[int, int]:
    start = int(index[first - 1]) if first > 0 else 0
    return start, int(index[last - 1]) if last > 0 else 0


def smallest_int_dtype(max_value: int) -> np.dtype:
    """The smallest signed integer type holding ``max_value`` (counts are never negative)."""
    for dtype in (np.int16, np.int32):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def check_bin_size(bin_size: float, key: str) -> float:
    if not np.isfinite(bin_size) or bin_size <= 0:
        raise ConfigError(f"{key}: bin size must be a positive number of seconds, got {bin_size}")
    return float(bin_size)


def _wider(dtype: np.dtype, counts: np.ndarray) -> np.dtype | None:
    """A wider integer type when ``counts`` do not fit ``dtype`` (None when they do)."""
    if counts.size and counts.max() > np.iinfo(dtype).max:
        return smallest_int_dtype(int(counts.max()))
    return None


def bin_spikes(
    times: np.ndarray,
    index: np.ndarray,
    start: float,
    bin_size: float,
    n_bins: int,
    dtype: np.dtype | type = np.int32,
) -> np.ndarray:
    """Counts ``(unit, bin)`` of spikes in the bins ``[start + k w, start + (k + 1) w)``.

    ``times`` is the flat spike-time array and ``index`` the end offset of each unit's spikes.
    Spikes outside ``[start, start + n_bins w)`` are ignored. Returns counts of ``dtype`` (int32:
    half the memory of int64; int16 halves it again, and a bin that overflows it makes the whole
    array a wider type, so the counts are exact whatever the type asked for).
    """
    bin_size = check_bin_size(bin_size, "bin_size")
    index = np.asarray(index, dtype=np.int64)
    dtype = np.dtype(dtype)
    counts = np.zeros((len(index), n_bins), dtype=dtype)
    lengths = np.diff(index, prepend=0)
    # Each unit gets n_bins + 2 slots: spikes before the first bin or after the last are clipped
    # into the two outer slots and dropped, which is cheaper than selecting the spikes inside.
    stride = n_bins + 2
    for first, last in _unit_groups(index, stride):
        lo, hi = _segment(index, first, last)
        if hi <= lo:
            continue
        slot = np.asarray(times[lo:hi], dtype=np.float64) - start
        slot /= bin_size
        np.floor(slot, out=slot)
        np.clip(slot, -1, n_bins, out=slot)
        flat = np.repeat(np.arange(last - first, dtype=np.int64) * stride + 1, lengths[first:last])
        flat += slot.astype(np.int64)
        group = np.bincount(flat, minlength=(last - first) * stride)
        group = group.reshape(last - first, stride)[:, 1:-1]
        if (wider := _wider(dtype, group)) is not None:
            return bin_spikes(times, index, start, bin_size, n_bins, wider)
        counts[first:last] = group
    return counts


def overlap_layers(starts: np.ndarray, width: float) -> int:
    """The fewest interleaved layers of sorted windows ``[s, s + width)`` without overlaps."""
    starts = np.sort(np.asarray(starts, dtype=np.float64))
    layers = 1
    while layers < len(starts) and np.any(starts[layers:] < starts[:-layers] + width):
        layers += 1
    return layers


def align_spikes(
    times: np.ndarray,
    index: np.ndarray,
    onsets: np.ndarray,
    window: tuple[float, float],
    bin_size: float,
    dtype: np.dtype | type = np.int32,
) -> np.ndarray:
    """Peri-stimulus counts ``(trial, unit, bin)``: for trial ``k`` the bins
    ``[onset_k + a + j w, onset_k + a + (j + 1) w)`` for ``j < n_bins = round((b - a) / w)``.

    A spike inside overlapping windows counts in each of them. Returns counts of ``dtype``, or
    of a wider integer type where a bin overflows it (as :func:`bin_spikes`).
    """
    dtype = np.dtype(dtype)
    bin_size = check_bin_size(bin_size, "bin_size_s")
    a, b = float(window[0]), float(window[1])
    if not b > a:
        raise ConfigError(f"window_s: the window end {b} must be after its start {a}")
    n_bins = max(1, round((b - a) / bin_size))
    width = n_bins * bin_size
    index = np.asarray(index, dtype=np.int64)
    onsets = np.asarray(onsets, dtype=np.float64)
    n_trials, n_units = len(onsets), len(index)
    counts = np.zeros((n_trials, n_units, n_bins), dtype=dtype)
    if n_trials == 0 or n_units == 0:
        return counts
    order = np.argsort(onsets, kind="stable")
    layers = overlap_layers(onsets + a, width)
    for layer in range(layers):
        trials = order[layer::layers]  # sorted by onset, windows disjoint within a layer
        starts = onsets[trials] + a
        for first, last in _unit_groups(index, len(trials) * n_bins, max_groups=128):
            lo, hi = _segment(index, first, last)
            if hi <= lo:
                continue
            t = np.asarray(times[lo:hi], dtype=np.float64)
            unit = unit_of_spikes(index, np.arange(lo, hi)) - first
            k = np.searchsorted(starts, t, side="right") - 1
            hit = k >= 0
            k, t, unit = k[hit], t[hit], unit[hit]
            bins = np.floor((t - starts[k]) / bin_size).astype(np.int64)
            hit = bins < n_bins
            flat = (k[hit] * (last - first) + unit[hit]) * n_bins + bins[hit]
            layer_counts = np.bincount(flat, minlength=len(trials) * (last - first) * n_bins)
            if (wider := _wider(dtype, layer_counts)) is not None:
                return align_spikes(times, index, onsets, window, bin_size, wider)
            counts[trials, first:last] = layer_counts.reshape(len(trials), last - first, n_bins)
    return counts


def bin_centres(start: float, bin_size: float, n_bins: int) -> np.ndarray:
    # rounded so that centres print as the decimals they are (0.075, not 0.07500000000000001)
    return np.round(start + (np.arange(n_bins) + 0.5) * bin_size, 12)
