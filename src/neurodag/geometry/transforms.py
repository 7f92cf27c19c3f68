"""Geo-topological transforms of RDMs (Lin & Kriegeskorte, "The Topology and Geometry of Neural
Representations", PNAS 2024).

As in the paper's own code (github.com/doerlbh/TopologicalRSA, ``utils_transform.py``), every RDM
is first rank-transformed and min-max scaled to [0, 1] on its own; the piecewise-linear GT(l, u)
map then takes the ``l`` and ``u`` quantiles of *that* RDM's scaled values as thresholds, sets
values below the lower to 0 (neighbours: local geometry ignored), above the upper to 1 (far apart:
global geometry ignored) and rescales linearly in between. The sigmoid variant is the logistic
of the scaled values, here centred at (l + u) / 2 with the slope that reaches 0.01 and 0.99 at
``l`` and ``u`` (the paper's code parametrises the same curve by centre and slope). The geodesic
variant (the paper's "two-step" geodesic) builds a graph with the GT values as edge lengths,
removes the saturated edges (GT = 1), takes shortest-path lengths and ranks them again. As in the
paper's code, whose networkx graph has no edge where the weight is 0, pairs below ``l`` are not
direct edges (they are reached through other stimuli); unreachable pairs tie above all others.

rsatoolbox's ``geotopological_transform`` differs: it neither ranks nor rescales each RDM, and it
takes the ``l``/``u`` quantiles jointly over all RDMs it is given, so one RDM's thresholds depend
on the others (tests/test_geometry_transforms.py shows the difference).

All functions take RDMs as upper-triangle vectors (..., n_pairs); see ``rdm.upper``/``rdm.square``.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import shortest_path
from scipy.special import expit
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
    """GT(l, u) of rank-scaled RDMs: 0 below the ``low`` quantile, 1 above the ``up`` quantile,
    linear in between (quantiles per RDM)."""
    _check_bounds(low, up)
    scaled = rank_scale(vectors)
    gt_min = np.quantile(scaled, low, axis=-1, keepdims=True)
    gt_max = np.quantile(scaled, up, axis=-1, keepdims=True)
    span = gt_max - gt_min
    ramp = np.divide(scaled - gt_min, span, out=np.zeros_like(scaled), where=span > 0)
    # equal thresholds: a step, the limiting case of the ramp
    ramp = np.where(span > 0, ramp, (scaled > gt_max).astype(float))
    return np.clip(ramp, 0.0, 1.0)


def sigmoid_transform(vectors: np.ndarray, low: float, up: float) -> np.ndarray:
    """Smooth GT(l, u): logistic of the rank-scaled RDM through 0.01 at ``low``, 0.99 at ``up``."""
    _check_bounds(low, up)
    scaled = rank_scale(vectors)
    width = max(up - low, 1e-6)
    steepness = 2 * np.log(99.0) / width
    return expit(steepness * (scaled - (low + up) / 2))  # the logistic, without overflow


def geodesic_transform(vectors: np.ndarray, low: float, up: float) -> np.ndarray:
    """Geodesic GT: shortest paths over the unsaturated GT(l, u) graph, then ranked to [0, 1]."""
    gt = np.atleast_2d(gt_transform(vectors, low, up))
    out = np.empty_like(gt)
    for k, vector in enumerate(gt.reshape(-1, gt.shape[-1])):
        weights = square(vector)
        # Saturated pairs are not edges; nor, as in the paper's networkx graph, are pairs of
        # weight 0 (csgraph's dense input also reads 0 as "no edge").
        weights[weights >= 1.0] = 0.0
        paths = shortest_path(weights, method="D", directed=False)
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
