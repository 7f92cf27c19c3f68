"""Sliding-window pairwise affinities between neuron traces (Dyballa et al., ICLR 2024, stage 1).

Dyballa et al. turn whole-brain calcium traces into a tensor of pairwise affinities over time and
animals before factorizing it. Here a worm's ``activity(time, neuron)`` is cut into overlapping
windows of ``window_s`` seconds every ``step_s`` seconds; within each window every trace is
standardized and the pair's Pearson correlation ``r_ij(w)`` computed. Two affinities:

- ``kernel`` (the default, nonlinear): ``a_ij(w) = exp(-d_ij(w)^2 / (2 sigma^2))`` where ``d_ij(w)^2
  = mean_t (z_i(t) - z_j(t))^2 = 2 (1 - r_ij(w))`` is the squared distance between the two
  standardized window segments; i.e. the heat (Gaussian) kernel on the sphere of standardized
  traces, ``exp(-(1 - r) / sigma^2)``. Why this and not ``|r|``: the kernel is 1 for traces that
  move together, decays exponentially with their distance so that the chance correlations of
  unrelated neurons (|r| ~ sqrt(2 / (pi L)) for L samples) are pushed to ~0 instead of forming a
  dense floor, and it gives ~0 to anti-correlated traces, which do not co-activate. The affinity
  tensor is then close to a sum of sparse blocks, which is what non-negative CP recovers.
- ``abs_correlation`` (baseline): ``|r_ij(w)|``.

Only the pairs a worm recorded are computed and kept (:func:`worm_pair_affinity`: per worm, the
pairs of its recorded neurons, each with its window series), so the affinities of a collection
grow with the pairs recorded together, never with all pairs x worms (a worm images ~100-150 of
the 302 neurons; Dag et al. 2023). Windows with fewer than ``min_valid_fraction`` valid samples
of either neuron give NaN affinities (masked downstream), never zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("kernel", "abs_correlation")


@dataclass(frozen=True)
class WindowGrid:
    """Window starts shared by all worms (window ``w`` covers the same seconds everywhere)."""

    starts: np.ndarray  # sample index of each window's first sample
    length: int  # samples per window
    dt: float  # seconds per sample

    @property
    def centres_s(self) -> np.ndarray:
        return (self.starts + (self.length - 1) / 2) * self.dt

    @classmethod
    def from_seconds(cls, n_time: int, dt: float, window_s: float, step_s: float) -> WindowGrid:
        length = max(3, int(round(window_s / dt)))
        step = max(1, int(round(step_s / dt)))
        if length > n_time:
            raise ValueError(f"window of {window_s} s ({length} samples) exceeds the recording")
        starts = np.arange(0, n_time - length + 1, step)
        return cls(starts=starts, length=length, dt=dt)


def pair_index(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i < j, of all unordered pairs of n neurons in row-major order."""
    return np.triu_indices(n, k=1)


def window_correlations(
    traces: np.ndarray, grid: WindowGrid, min_valid_fraction: float = 0.8
) -> np.ndarray:
    """Pearson correlation of every pair in every window: ``(window, neuron, neuron)``, NaN-masked.

    ``traces`` is ``(time, neuron)`` with NaN where not recorded. A neuron's window is invalid when
    under ``min_valid_fraction`` of its samples are finite or when it is constant.
    """
    windows = np.lib.stride_tricks.sliding_window_view(traces, grid.length, axis=0)[grid.starts]
    windows = windows.astype(np.float64)  # (window, neuron, sample)
    valid = np.isfinite(windows)
    n_valid = valid.sum(axis=-1)
    filled = np.where(valid, windows, 0.0)
    mean = filled.sum(axis=-1) / np.maximum(n_valid, 1)
    centred = np.where(valid, windows - mean[..., None], 0.0)
    norm = np.sqrt((centred**2).sum(axis=-1))
    ok = (n_valid >= min_valid_fraction * grid.length) & (norm > 1e-12 * np.sqrt(grid.length))
    z = np.where(ok[..., None], centred / np.where(ok, norm, 1.0)[..., None], 0.0)
    # Pairwise sums over samples both neurons recorded; gaps are zero in z, so they drop out.
    corr = np.einsum("wis,wjs->wij", z, z)
    both = ok[:, :, None] & ok[:, None, :]
    return np.where(both, np.clip(corr, -1.0, 1.0), np.nan)


def affinity_from_correlation(corr: np.ndarray, method: str, bandwidth: float) -> np.ndarray:
    """Map correlations to affinities (NaN stays NaN); see the module docstring for the formulas."""
    if method == "kernel":
        return np.exp(-(1.0 - corr) / bandwidth**2)
    if method == "abs_correlation":
        return np.abs(corr)
    raise ValueError(f"unknown affinity method {method!r}; expected one of {METHODS}")


def pair_id(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Position of the pair (i, j), i < j, in :func:`pair_index` order of n neurons."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    return i * (2 * n - i - 1) // 2 + (j - i - 1)


def worm_pair_affinity(
    traces: np.ndarray,
    grid: WindowGrid,
    *,
    method: str = "kernel",
    bandwidth: float = 0.35,
    min_valid_fraction: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """One worm's affinities over the pairs it recorded: ``(ids, values)``.

    ``traces`` is ``(time, neuron)`` over n neurons, NaN where not recorded; ``ids`` are the
    recorded pairs' positions in :func:`pair_index` order of the n neurons (ascending) and
    ``values`` their ``(pair, window)`` affinities (float32, NaN in masked windows). A pair
    whose every window is masked is left out."""
    n = traces.shape[1]
    recorded = np.flatnonzero(np.isfinite(traces).any(axis=0))
    corr = window_correlations(traces[:, recorded], grid, min_valid_fraction)
    i, j = pair_index(recorded.size)
    values = affinity_from_correlation(corr[:, i, j], method, bandwidth).T.astype(np.float32)
    keep = np.isfinite(values).any(axis=1)
    return pair_id(recorded[i[keep]], recorded[j[keep]], n), values[keep]


def worm_affinity(traces: np.ndarray, grid: WindowGrid, **options) -> np.ndarray:
    """Affinities of one worm over all pairs of its n neurons, ``(pair, window)`` (float32, NaN
    where masked): :func:`worm_pair_affinity` (same ``options``) laid out densely, for small
    inputs."""
    ids, values = worm_pair_affinity(traces, grid, **options)
    n = traces.shape[1]
    out = np.full((n * (n - 1) // 2, grid.starts.size), np.nan, dtype=np.float32)
    out[ids] = values
    return out
