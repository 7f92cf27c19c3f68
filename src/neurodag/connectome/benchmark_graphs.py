"""Weighted LFR-style planted-partition graphs (Lancichinetti & Fortunato 2009, weighted variant).

Dyballa et al. compare community detectors on weighted LFR benchmark graphs of N = 125 nodes
(their benchmark notebook: average degree 25, maximum degree 100, degree exponent 2, community-size
exponent 1, strength exponent beta = 2, mu_t = mu_w = 0.5, varying one of mu_t, mu_w, beta and the
degree at a time). This generator follows the LFR recipe with a configuration model: power-law
degrees (exponent ``tau1``) between a minimum chosen, as LFR does, so that the mean degree is
``average_degree``, and ``max_degree``; community sizes (exponent ``tau2``) between that minimum
degree and the maximum degree unless given; each node sends a fraction ``mu_t`` of its edge stubs
outside its community; node strength is ``k^beta`` and a fraction ``mu_w`` of it sits on external
edges (each edge's weight averages what its two end nodes ask for). Multi-edges and self-loops of
the configuration model are dropped, so realised mixing is close to, not exactly, the nominal one.
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


def _power_law_mean(exponent, low, high) -> float:
    k = np.arange(low, high + 1, dtype=float)
    p = k**-exponent
    return float(np.sum(k * p) / np.sum(p))


def minimum_degree(average_degree: float, max_degree: int, exponent: float) -> int:
    """The smallest degree whose power law on [it, max_degree] has the mean nearest the target."""
    candidates = np.arange(1, max_degree + 1)
    means = np.array([_power_law_mean(exponent, low, max_degree) for low in candidates])
    return int(candidates[np.argmin(np.abs(means - average_degree))])


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


def _wire(
    rng, stubs: np.ndarray, nodes: np.ndarray, labels: np.ndarray | None = None, rounds: int = 50
) -> set[tuple[int, int]]:
    """Random pairing of stubs (node repeated by its stub count) into a simple graph.

    Pairs that would be a self-loop, a repeated edge or, when ``labels`` is given, an edge inside a
    community are undone and their stubs re-paired in the next round (LFR rewires the same way), so
    the realised degrees and mixing stay close to the requested ones."""
    pool = np.repeat(nodes, stubs)
    edges: set[tuple[int, int]] = set()
    for _ in range(rounds):
        if len(pool) < 2:
            break
        rng.shuffle(pool)
        pairs = pool[: len(pool) // 2 * 2].reshape(-1, 2)
        left = [pool[len(pool) // 2 * 2 :]]
        for u, v in pairs:
            edge = (min(u, v), max(u, v))
            bad = u == v or edge in edges or (labels is not None and labels[u] == labels[v])
            if bad:
                left.append(np.array([u, v]))
            else:
                edges.add(edge)
        remaining = np.concatenate(left)
        if len(remaining) == len(pool):
            break
        pool = remaining
    return edges


def weighted_lfr(
    n: int = 125,
    *,
    mu_t: float = 0.5,
    mu_w: float = 0.5,
    average_degree: float = 25,
    max_degree: int = 100,
    tau1: float = 2.0,
    tau2: float = 1.0,
    beta: float = 2.0,
    min_community: int | None = None,
    max_community: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A symmetric weight matrix ``(n, n)`` (0 = no edge) and the planted community labels.

    Defaults are the base graph of Dyballa et al.'s benchmark; community sizes default to
    [minimum degree, maximum degree], LFR's automatic range."""
    rng = np.random.default_rng(seed)
    low = minimum_degree(average_degree, max_degree, tau1)
    smallest = low if min_community is None else min_community
    largest = max_degree if max_community is None else max_community
    sizes = _community_sizes(rng, n, tau2, smallest, min(largest, n))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(labels)
    degree = _power_law(rng, n, tau1, low, max_degree)
    external = rng.binomial(degree, mu_t)
    internal = degree - external
    edges_in: set[tuple[int, int]] = set()
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        stubs = np.minimum(internal[members], len(members) - 1)
        edges_in |= _wire(rng, stubs, members)
    edges_out = _wire(rng, external, np.arange(n), labels)
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
