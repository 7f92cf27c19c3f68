"""Degree-corrected SBM by minimum description length (Dyballa et al. stage 3, LFR benchmark).

Dyballa et al. use graph-tool's SBM, which infers the partition of a graph by minimising its
description length (Peixoto 2017, Phys. Rev. E 95, 012317, "Nonparametric Bayesian inference of the
microcanonical stochastic block model"). This module implements the non-nested, degree-corrected
version of that model: the description length of a simple graph ``A`` with partition ``b`` into
``B`` blocks is ``Sigma = S + L`` with

- ``S = -ln P(A | k, e, b) = sum_i ln k_i! - sum_{r<s} ln e_rs! - sum_r ln e_rr!! + sum_r ln e_r!``
  (the number of graphs with the given degrees ``k`` and block edge counts ``e``; ``e_rr`` counts
  within-block edge ends, i.e. twice the edges);
- ``L`` the information to describe the model: the partition, ``ln C(N-1, B-1) + ln N! - sum_r
  ln n_r! + ln N``; the edge counts between blocks, ``ln multiset(B(B+1)/2, E)``; and the
  degrees inside each block, ``sum_r ln multiset(n_r, e_r)`` (uniform degree prior).

Degree correction is what keeps a graph with heterogeneous degrees (LFR's power-law degrees, hub
neurons) from being split into degree strata, which a plain SBM does. Weights enter as follows:
graph-tool's weighted SBM adds a weight layer on top of this edge layer; on the weighted LFR
benchmark each edge's weight is a function of its end nodes' degrees and carries no community
information beyond the edges, so the partition is inferred from the edge layer (an edge is a pair
with a positive finite weight; NaN pairs count as non-edges).

The number of blocks is the model's choice: the partition minimising ``Sigma`` over ``B``. At each
``B`` the partition is found by greedy single-node moves (each move the best decrease of
``Sigma`` for that node; it decreases monotonically) from a spectral start (row-normalised
eigenvectors of the regularized normalised adjacency, k-means; Qin & Rohe 2013) and random starts.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from neurodag.connectome.sbm import SBMFit, _kmeans


def _ln_binom(n, k):
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def _ln_multiset(n, k):
    """ln of the number of multisets of size k from n kinds, C(n + k - 1, k)."""
    n = np.maximum(n, 1)  # an empty block (n = 0) holds no edge ends and costs nothing
    return _ln_binom(n + k - 1, k)


class _Graph:
    def __init__(self, weights: np.ndarray):
        w = np.where(np.isfinite(weights), weights, 0.0)
        a = (w > 0).astype(np.float64)
        np.fill_diagonal(a, 0.0)
        self.a = np.maximum(a, a.T)
        self.n = len(a)
        self.degree = self.a.sum(1)
        self.n_edges = self.a.sum() / 2
        # the partition-free part of S
        self.constant = float(np.sum(gammaln(self.degree + 1)))

    def description_length(self, e: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Sigma for block edge-count matrices ``e`` (..., B, B) and block sizes (..., B).

        Empty blocks are allowed and simply not counted (B is the number of occupied blocks)."""
        diag = np.diagonal(e, axis1=-2, axis2=-1)
        upper = np.triu(np.ones(e.shape[-2:], dtype=bool), 1)
        within = diag / 2
        e_r = e.sum(-1)
        s = (
            self.constant
            - np.sum(np.where(upper, gammaln(e + 1), 0.0), axis=(-2, -1))
            - np.sum(within * np.log(2) + gammaln(within + 1), axis=-1)
            + np.sum(gammaln(e_r + 1), axis=-1)
        )
        b = np.sum(sizes > 0, axis=-1)
        n = self.n
        partition = (
            _ln_binom(n - 1, b - 1) + gammaln(n + 1) - np.sum(gammaln(sizes + 1), -1) + np.log(n)
        )
        edges = _ln_multiset(b * (b + 1) / 2, self.n_edges)
        degrees = np.sum(_ln_multiset(sizes, e_r), axis=-1)
        return s + partition + edges + degrees

    def refine(self, labels: np.ndarray, k: int, rng: np.random.Generator, max_sweeps: int = 30):
        """Greedy best single-node moves (random node order) until a sweep moves no node."""
        labels = labels.copy()
        onehot = np.eye(k)[labels]
        e = onehot.T @ self.a @ onehot
        sizes = onehot.sum(0)
        to_block = self.a @ onehot  # (n, k): each node's edges into each block
        current = float(self.description_length(e, sizes))
        blocks = np.arange(k)
        for _ in range(max_sweeps):
            moved = 0
            for i in rng.permutation(self.n):
                r = labels[i]
                ea = to_block[i]
                base = e.copy()
                base[r] -= ea
                base[:, r] -= ea
                cand = np.repeat(base[None], k, axis=0)  # candidate s: i moved into block s
                cand[blocks, blocks, :] += ea
                cand[blocks, :, blocks] += ea
                cand_sizes = np.repeat(sizes[None], k, axis=0)
                cand_sizes[:, r] -= 1
                cand_sizes[blocks, blocks] += 1
                dl = self.description_length(cand, cand_sizes)
                s = int(np.argmin(dl))
                if s != r and dl[s] < current - 1e-9:
                    e, sizes, current = cand[s], cand_sizes[s], float(dl[s])
                    labels[i] = s
                    to_block[:, r] -= self.a[:, i]
                    to_block[:, s] += self.a[:, i]
                    moved += 1
            if moved == 0:
                break
        return labels, current


def _spectral_labels(graph: _Graph, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means on row-normalised leading eigenvectors of the regularized normalised adjacency."""
    d = 1 / np.sqrt(graph.degree + graph.degree.mean())
    values, vectors = np.linalg.eigh(d[:, None] * graph.a * d[None, :])
    top = vectors[:, np.argsort(-values)[:k]]
    top /= np.maximum(np.linalg.norm(top, axis=1, keepdims=True), 1e-12)
    return _kmeans(top, k, rng)


def fit_dcsbm_fixed_k(
    weights: np.ndarray, k: int, *, restarts: int = 3, random_state=0
) -> tuple[np.ndarray, float]:
    """Lowest-description-length partition into at most ``k`` blocks over a spectral and
    ``restarts - 1`` random starts; returns labels and the description length (nats)."""
    rng = np.random.default_rng(random_state)
    graph = _Graph(weights)
    best = None
    for start in range(max(1, restarts) if k > 1 else 1):
        if k == 1:
            init = np.zeros(graph.n, dtype=int)
        elif start == 0:
            init = _spectral_labels(graph, k, rng)
        else:
            init = rng.integers(k, size=graph.n)
        labels, dl = graph.refine(init, k, rng)
        if best is None or dl < best[1]:
            best = (labels, dl)
    return best


def fit_dcsbm(
    weights: np.ndarray, *, max_blocks: int = 8, restarts: int = 3, random_state: int = 0
) -> tuple[SBMFit, dict[int, float]]:
    """The degree-corrected SBM partition of minimum description length over 1..max_blocks blocks,
    and the description length per block count tried.

    Blocks are ordered by decreasing within-block edge density; the scan stops two block counts
    past the last improvement."""
    n = len(weights)
    fits: dict[int, tuple[np.ndarray, float]] = {}
    best_k = 1
    for k in range(1, min(max_blocks, n) + 1):
        fits[k] = fit_dcsbm_fixed_k(weights, k, restarts=restarts, random_state=random_state + k)
        if fits[k][1] < fits[best_k][1]:
            best_k = k
        elif k - best_k >= 2:
            break
    labels, dl = fits[best_k]
    graph = _Graph(weights)
    _, labels = np.unique(labels, return_inverse=True)
    k = labels.max() + 1
    onehot = np.eye(k)[labels]
    e = onehot.T @ graph.a @ onehot
    sizes = onehot.sum(0)
    density = e / np.maximum(np.outer(sizes, sizes) - np.diag(sizes), 1)
    order = np.argsort(-np.diag(density))
    relabel = np.empty(k, dtype=int)
    relabel[order] = np.arange(k)
    return (
        SBMFit(
            labels=relabel[labels],
            tau=np.eye(k)[relabel[labels]],
            mu=density[np.ix_(order, order)],
            var=np.zeros((k, k)),
            pi=sizes[order] / n,
            elbo=-dl,
            icl=-dl,
        ),
        {kk: -f[1] for kk, f in fits.items()},
    )


def description_length(weights: np.ndarray, labels: np.ndarray) -> float:
    """The description length (nats) of the graph of ``weights`` under partition ``labels``."""
    graph = _Graph(weights)
    _, labels = np.unique(labels, return_inverse=True)
    onehot = np.eye(labels.max() + 1)[labels]
    return float(graph.description_length(onehot.T @ graph.a @ onehot, onehot.sum(0)))
