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
neurons) from being split into degree strata, which a plain SBM does. An edge is a pair with a
positive finite weight; NaN pairs count as non-edges.

Weights are a second layer, as in graph-tool's weighted SBM with ``rec_types=["real-exponential"]``
(Peixoto 2018, Phys. Rev. E 97, 012306, "Nonparametric weighted stochastic block models"), the
model Dyballa et al. used: the ``m_rs`` edge weights between blocks ``r`` and ``s`` are exponential
with rate ``lambda_rs``, and integrating ``lambda_rs`` over a Gamma(1, ``w0``) prior leaves

    -ln P(x | e, b) = sum_{r<=s} [ (m_rs + 1) ln(w0 + X_rs) - ln w0 - ln m_rs! ]

with ``X_rs`` the blocks' summed weight and ``w0`` the graph's mean edge weight (which makes the
choice of partition invariant to the weights' unit). This is a density, so only differences between
partitions of the same graph are meaningful, as for graph-tool's real-valued layers. With
``weight_model="none"`` the partition is inferred from the edge layer alone.
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


WEIGHT_MODELS = ("exponential", "none")


class _Graph:
    def __init__(self, weights: np.ndarray, weight_model: str = "exponential"):
        if weight_model not in WEIGHT_MODELS:
            raise ValueError(f"weight_model must be one of {WEIGHT_MODELS}, not {weight_model!r}")
        w = np.where(np.isfinite(weights), weights, 0.0)
        a = (w > 0).astype(np.float64)
        np.fill_diagonal(a, 0.0)
        self.a = np.maximum(a, a.T)
        self.weighted = weight_model == "exponential"
        # the weight layer's matrix: the symmetrised edge weights (zero off the edges)
        self.w = np.where(self.a > 0, np.maximum(w, w.T), 0.0) if self.weighted else None
        self.w0 = float(self.w[self.a > 0].mean()) if self.weighted and self.a.any() else 1.0
        self.n = len(a)
        self.degree = self.a.sum(1)
        self.n_edges = self.a.sum() / 2
        # the partition-free part of S
        self.constant = float(np.sum(gammaln(self.degree + 1)))

    def block_matrices(self, onehot: np.ndarray):
        """Block edge counts (edge ends on the diagonal) and, weighted, block weight sums."""
        e = onehot.T @ self.a @ onehot
        return e, (onehot.T @ self.w @ onehot if self.weighted else None)

    def weight_length(self, e: np.ndarray, x: np.ndarray) -> np.ndarray:
        """-ln P(weights | e, b) of the exponential weight layer (..., B, B) -> (...)."""
        upper = np.triu(np.ones(e.shape[-2:], dtype=bool))
        diagonal = np.eye(e.shape[-1], dtype=bool)
        m = np.where(diagonal, e / 2, e)
        total = np.where(diagonal, x / 2, x)
        terms = (m + 1) * np.log(self.w0 + total) - np.log(self.w0) - gammaln(m + 1)
        return np.sum(np.where(upper, terms, 0.0), axis=(-2, -1))

    def description_length(self, e: np.ndarray, sizes: np.ndarray, x=None) -> np.ndarray:
        """Sigma for block edge-count matrices ``e`` (..., B, B), block sizes (..., B) and, for the
        weighted model, block weight sums ``x`` (..., B, B).

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
        edges = _ln_multiset(b * (b + 1) / 2, self.n_edges)
        degrees = np.sum(_ln_multiset(sizes, e_r), axis=-1)
        total = s + self.partition_length(sizes) + edges + degrees
        return total + self.weight_length(e, x) if self.weighted else total

    def partition_length(self, sizes: np.ndarray) -> np.ndarray:
        """-ln P(b): the number of blocks, their sizes, and which nodes are in them."""
        b = np.sum(sizes > 0, axis=-1)
        n = self.n
        return _ln_binom(n - 1, b - 1) + gammaln(n + 1) - np.sum(gammaln(sizes + 1), -1) + np.log(n)

    def refine(self, labels: np.ndarray, k: int, rng: np.random.Generator, max_sweeps: int = 30):
        """Greedy best single-node moves (random node order) until a sweep moves no node."""
        labels = labels.copy()
        onehot = np.eye(k)[labels]
        e, x = self.block_matrices(onehot)
        sizes = onehot.sum(0)
        to_block = self.a @ onehot  # (n, k): each node's edges into each block
        weight_to_block = self.w @ onehot if self.weighted else None
        current = float(self.description_length(e, sizes, x))
        blocks = np.arange(k)

        def candidates(matrix, row, r):
            """The block matrix with node i moved from block r into each block s: (k, k, k)."""
            base = matrix.copy()
            base[r] -= row
            base[:, r] -= row
            cand = np.repeat(base[None], k, axis=0)
            cand[blocks, blocks, :] += row
            cand[blocks, :, blocks] += row
            return cand

        for _ in range(max_sweeps):
            moved = 0
            for i in rng.permutation(self.n):
                r = labels[i]
                cand = candidates(e, to_block[i], r)
                cand_x = candidates(x, weight_to_block[i], r) if self.weighted else None
                cand_sizes = np.repeat(sizes[None], k, axis=0)
                cand_sizes[:, r] -= 1
                cand_sizes[blocks, blocks] += 1
                dl = self.description_length(cand, cand_sizes, cand_x)
                s = int(np.argmin(dl))
                if s != r and dl[s] < current - 1e-9:
                    e, sizes, current = cand[s], cand_sizes[s], float(dl[s])
                    labels[i] = s
                    to_block[:, r] -= self.a[:, i]
                    to_block[:, s] += self.a[:, i]
                    if self.weighted:
                        x = cand_x[s]
                        weight_to_block[:, r] -= self.w[:, i]
                        weight_to_block[:, s] += self.w[:, i]
                    moved += 1
            if moved == 0:
                break
        return labels, current


def _spectral_labels(
    graph: _Graph, k: int, rng: np.random.Generator, use_weights: bool
) -> np.ndarray:
    """k-means on row-normalised leading eigenvectors of the regularized normalised adjacency,
    or of the weighted adjacency normalised by strengths (a start that sees the weights)."""
    m = graph.w / graph.w0 if use_weights else graph.a
    strength = m.sum(1)
    d = 1 / np.sqrt(strength + strength.mean())
    values, vectors = np.linalg.eigh(d[:, None] * m * d[None, :])
    top = vectors[:, np.argsort(-values)[:k]]
    top /= np.maximum(np.linalg.norm(top, axis=1, keepdims=True), 1e-12)
    return _kmeans(top, k, rng)


def fit_dcsbm_fixed_k(
    weights: np.ndarray,
    k: int,
    *,
    restarts: int = 3,
    random_state=0,
    weight_model: str = "exponential",
) -> tuple[np.ndarray, float]:
    """Lowest-description-length partition into at most ``k`` blocks over spectral starts (the
    edges', and the weights' for the weighted model) and random starts, ``restarts`` in all but
    at least the spectral ones; returns labels and the description length (nats)."""
    rng = np.random.default_rng(random_state)
    graph = _Graph(weights, weight_model)
    spectral = [False, True] if graph.weighted else [False]
    best = None
    for start in range(max(restarts, len(spectral)) if k > 1 else 1):
        if k == 1:
            init = np.zeros(graph.n, dtype=int)
        elif start < len(spectral):
            init = _spectral_labels(graph, k, rng, use_weights=spectral[start])
        else:
            init = rng.integers(k, size=graph.n)
        labels, dl = graph.refine(init, k, rng)
        if best is None or dl < best[1]:
            best = (labels, dl)
    return best


def fit_dcsbm(
    weights: np.ndarray,
    *,
    max_blocks: int = 8,
    restarts: int = 3,
    random_state: int = 0,
    weight_model: str = "exponential",
) -> tuple[SBMFit, dict[int, float]]:
    """The degree-corrected weighted SBM partition of minimum description length over
    1..max_blocks blocks, and the description length per block count tried.

    Blocks are ordered by decreasing within-block edge density; the scan stops two block counts
    past the last improvement."""
    n = len(weights)
    fits: dict[int, tuple[np.ndarray, float]] = {}
    best_k = 1
    for k in range(1, min(max_blocks, n) + 1):
        fits[k] = fit_dcsbm_fixed_k(
            weights,
            k,
            restarts=restarts,
            random_state=random_state + k,
            weight_model=weight_model,
        )
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


def description_length(
    weights: np.ndarray,
    labels: np.ndarray,
    weight_model: str = "exponential",
) -> float:
    """The description length (nats) of the graph of ``weights`` under partition ``labels``."""
    graph = _Graph(weights, weight_model)
    _, labels = np.unique(labels, return_inverse=True)
    onehot = np.eye(labels.max() + 1)[labels]
    return float(graph.description_length(*_with_sizes(graph, onehot)))


def _with_sizes(graph: _Graph, onehot: np.ndarray):
    e, x = graph.block_matrices(onehot)
    return e, onehot.sum(0), x
