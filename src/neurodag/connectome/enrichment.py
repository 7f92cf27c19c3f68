"""Structure versus function: anatomical connections within versus between functional communities.

For one component's communities, the enrichment is the density of anatomical connections (an edge
in the consensus connectome: chemical in either direction, or electrical) among neuron pairs in the
same community, divided by the density among pairs in different communities. Its p-value comes
from permuting the community labels over the neurons (community sizes kept), one-sided:
``(1 + #{perm >= observed}) / (1 + n_perm)`` (Phipson & Smyth 2010).
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def anatomical_adjacency(connectome: xr.Dataset, neurons, source: str = "consensus") -> np.ndarray:
    """Symmetric boolean adjacency of ``neurons`` from ``weight(source, synapse, pre, post)``."""
    weight = connectome["weight"].sel(source=source)
    anatomical = [s for s in ("chemical", "electrical") if s in weight["synapse"].values]
    w = weight.sel(synapse=anatomical, pre=list(neurons), post=list(neurons)).fillna(0).values
    edges = (w > 0).any(axis=0)
    edges = edges | edges.T
    np.fill_diagonal(edges, False)
    return edges


def _within_between(adjacency: np.ndarray, labels: np.ndarray, pairs) -> tuple[float, float]:
    i, j = pairs
    same = labels[i] == labels[j]
    edge = adjacency[i, j]
    within = edge[same].mean() if same.any() else np.nan
    between = edge[~same].mean() if (~same).any() else np.nan
    return within, between


def enrichment(
    adjacency: np.ndarray, labels: np.ndarray, *, n_perm: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Within/between connection densities, their ratio, and the permutation p-value."""
    labels = np.asarray(labels)
    pairs = np.triu_indices(len(labels), k=1)
    within, between = _within_between(adjacency, labels, pairs)
    ratio = within / between if between > 0 else np.nan
    if not np.isfinite(ratio) or len(np.unique(labels)) < 2:
        return {"within": within, "between": between, "ratio": ratio, "p_value": np.nan}
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(n_perm):
        w, b = _within_between(adjacency, rng.permutation(labels), pairs)
        exceed += (w / b if b > 0 else np.inf) >= ratio
    return {
        "within": float(within),
        "between": float(between),
        "ratio": float(ratio),
        "p_value": (1 + exceed) / (1 + n_perm),
    }
