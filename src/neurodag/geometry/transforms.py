"""Geo-topological transforms of RDMs (Lin & Kriegeskorte, "The Topology and Geometry of Neural
Representations", PNAS 2024).

As in the paper's own code, every RDM is first rank-transformed and scaled to [0, 1] on its own;
the piecewise-linear GT(l, u) map then sets dissimilarities below ``l`` to 0 (neighbours: local
geometry ignored), above ``u`` to 1 (far apart: global geometry ignored) and rescales linearly in
between. Because the input is per-RDM ranks scaled to [0, 1], ``l`` and ``u`` are quantiles of
*that* RDM's dissimilarities. The sigmoid variant replaces the ramp by a logistic centred at
(l + u) / 2 that reaches 0.01 and 0.99 at ``l`` and ``u``; the geodesic variant removes the
saturated edges (GT = 1), takes graph shortest-path lengths over the remaining GT-weighted edges
(unreachable pairs get the largest distance) and ranks and scales the result again.

rsatoolbox's ``geotopological_transform`` differs: it neither ranks nor rescales each RDM, and it
takes the ``l``/``u`` quantiles jointly over all RDMs it is given, so one RDM's thresholds depend
on the others (tests/test_geometry_transforms.py shows the difference).

All functions take RDMs as upper-triangle vectors (..., n_pairs); see ``rdm.upper``/``rdm.square``.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import csgraph_from_dense, shortest_path
from scipy.stats import rankdata

from neurodag.geometry.rdm import square, upper


def rank_scale(vectors: np.ndarray) -> np.ndarray:
    """Per RDM (last axis): ranks (ties averaged) scaled linearly to [0, 1]."""
    vectors = np.asarray(vectors, dtype=float)
    ranks = rankdata(vectors, axis=-1, method="average")
    low = ranks.min(axis=-1, keepdims=True)
    span = ranks.max(axis=-1, keepdims=True) - low
    return np.divide(ranks - low, span, out=np.zeros_like(ranks), where=span > 0)


def _check_bounds(low: float, up: float) -> None:
    if not 0.0 <= low <= up <= 1.0:
        raise ValueError(f"need 0 <= l <= u <= 1, got l={low}, u={up}")


def gt_transform(vectors: np.ndarray, low: float, up: float) -> np.ndarray:
    """GT(l, u) of rank-scaled RDMs: 0 below ``low``, 1 above ``up``, linear in between."""
    _check_bounds(low, up)
    scaled = rank_scale(vectors)
    if up == low:  # a step: the limiting case of the ramp
        return (scaled > low).astype(float)
    return np.clip((scaled - low) / (up - low), 0.0, 1.0)


def sigmoid_transform(vectors: np.ndarray, low: float, up: float) -> np.ndarray:
    """Smooth GT(l, u): logistic through 0.01 at ``low`` and 0.99 at ``up``, rescaled to [0, 1]."""
    _check_bounds(low, up)
    scaled = rank_scale(vectors)
    width = max(up - low, 1e-6)
    steepness = 2 * np.log(99.0) / width
    out = 1.0 / (1.0 + np.exp(-steepness * (scaled - (low + up) / 2)))
    lo, hi = out.min(axis=-1, keepdims=True), out.max(axis=-1, keepdims=True)
    return np.divide(out - lo, hi - lo, out=np.zeros_like(out), where=hi > lo)


def geodesic_transform(vectors: np.ndarray, low: float, up: float) -> np.ndarray:
    """Geodesic GT: shortest paths over the unsaturated GT(l, u) graph, then ranked to [0, 1]."""
    gt = np.atleast_2d(gt_transform(vectors, low, up))
    out = np.empty_like(gt)
    for k, vector in enumerate(gt.reshape(-1, gt.shape[-1])):
        weights = square(vector)
        # Saturated pairs are not edges; zero-weight pairs (below l) are edges of length 0, so the
        # graph is built with inf, not 0, as "no edge".
        weights[weights >= 1.0] = np.inf
        np.fill_diagonal(weights, np.inf)
        graph = csgraph_from_dense(weights, null_value=np.inf)
        paths = shortest_path(graph, method="D", directed=False)
        paths_vector = upper(paths)
        finite = np.isfinite(paths_vector)
        longest = paths_vector[finite].max() if finite.any() else 0.0
        paths_vector[~finite] = longest + 1.0  # unreachable: farther than any path
        out.reshape(-1, gt.shape[-1])[k] = paths_vector
    return rank_scale(out).reshape(np.shape(vectors))


TRANSFORMS = {"gt": gt_transform, "sigmoid": sigmoid_transform, "geodesic": geodesic_transform}


def transform(vectors: np.ndarray, kind: str, low: float, up: float) -> np.ndarray:
    """Apply one of :data:`TRANSFORMS` (``raw`` returns the rank-scaled RDMs unchanged)."""
    if kind == "raw":
        return rank_scale(vectors)
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown transform {kind!r}; expected raw or one of {list(TRANSFORMS)}")
    return TRANSFORMS[kind](vectors, low, up)
