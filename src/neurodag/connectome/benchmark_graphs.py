"""Weighted LFR-style planted-partition graphs (Lancichinetti & Fortunato 2009, weighted variant).

Dyballa et al. compare community detectors on weighted LFR benchmark graphs of N = 125 nodes at
several mixing levels. This generator follows the LFR recipe with a configuration model: power-law
degrees (exponent ``tau1``) and community sizes (``tau2``); each node sends a fraction ``mu_t`` of
its edge stubs outside its community; node strength is ``k^beta`` and a fraction ``mu_w`` of it sits
on external edges (each edge's weight averages what its two end nodes ask for). Multi-edges and
self-loops of the configuration model are dropped, so realised mixing is close to, not exactly,
the nominal one.
"""

from __future__ import annotations

import numpy as np


def _power_law(rng, n, exponent, low, high) -> np.ndarray:
    """Integers in [low, high] with P(x) ~ x^-exponent (inverse-CDF sampling)."""
    u = rng.random(n)
    if abs(exponent - 1) < 1e-9:
        x = low * (high / low) ** u
    else:
        a = 1 - exponent
        x = (low**a + u * (high**a - low**a)) ** (1 / a)
    return np.clip(np.round(x).astype(int), low, high)


def _community_sizes(rng, n, tau2, smallest, largest) -> np.ndarray:
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(_power_law(rng, 1, tau2, smallest, largest)[0]))
    excess = sum(sizes) - n
    sizes[-1] -= excess
    if sizes[-1] < smallest:  # fold a too-small last community into the others
        last = sizes.pop()
        for k in range(last):
            sizes[k % len(sizes)] += 1
    return np.array(sizes)


def _wire(rng, stubs: np.ndarray, nodes: np.ndarray) -> set[tuple[int, int]]:
    """Random pairing of stubs (node repeated by its stub count); no loops, no multi-edges."""
    pool = np.repeat(nodes, stubs)
    rng.shuffle(pool)
    if len(pool) % 2:
        pool = pool[:-1]
    edges = set()
    for u, v in pool.reshape(-1, 2):
        if u != v:
            edges.add((min(u, v), max(u, v)))
    return edges


def weighted_lfr(
    n: int = 125,
    *,
    mu_t: float = 0.3,
    mu_w: float = 0.3,
    average_degree: int = 12,
    max_degree: int = 30,
    tau1: float = 2.0,
    tau2: float = 1.0,
    beta: float = 1.5,
    min_community: int = 10,
    max_community: int = 40,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A symmetric weight matrix ``(n, n)`` (0 = no edge) and the planted community labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(
        np.arange(len(s := _community_sizes(rng, n, tau2, min_community, max_community))), s
    )
    rng.shuffle(labels)
    low = max(2, int(average_degree / 2))
    degree = _power_law(rng, n, tau1, low, max_degree)
    external = rng.binomial(degree, mu_t)
    internal = degree - external
    edges_in: set[tuple[int, int]] = set()
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        stubs = np.minimum(internal[members], len(members) - 1)
        edges_in |= _wire(rng, stubs, members)
    edges_out = {e for e in _wire(rng, external, np.arange(n)) if labels[e[0]] != labels[e[1]]}
    edges_out -= edges_in
    k_in, k_out = np.zeros(n), np.zeros(n)
    for u, v in edges_in:
        k_in[[u, v]] += 1
    for u, v in edges_out:
        k_out[[u, v]] += 1
    strength = (k_in + k_out) ** beta
    ask_in = (1 - mu_w) * strength / np.maximum(k_in, 1)
    ask_out = mu_w * strength / np.maximum(k_out, 1)
    weights = np.zeros((n, n))
    for edges, ask in ((edges_in, ask_in), (edges_out, ask_out)):
        for u, v in edges:
            weights[u, v] = weights[v, u] = 0.5 * (ask[u] + ask[v])
    return weights, labels
