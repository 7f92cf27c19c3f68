"""Weighted stochastic block model by variational EM, block count by ICL (Dyballa et al. stage 3).

Dyballa et al. find communities on each component's weighted neuron graph with graph-tool's nested
weighted SBM, which PyPI does not carry. This is the weighted SBM of Mariadassou, Robin & Vacher
(2010, Ann. Appl. Stat., "Uncovering latent structure in valued graphs: a variational approach"):
every neuron ``i`` belongs to block ``z_i`` with prior ``pi``, and the weight of an unordered pair
is Gaussian given the blocks, ``w_ij ~ N(mu_{z_i z_j}, s2_{z_i z_j})`` (symmetric ``mu``, ``s2``),
on the complete graph (affinities are dense; a zero weight is information too). The posterior over
blocks is approximated by a mean-field ``q(z_i = k) = tau_ik`` and the evidence lower bound is
maximised by alternating the fixed-point update of ``tau`` (E step) and closed-form ``pi, mu, s2``
(M step). The number of blocks is the model's choice: the one maximising the integrated completed
likelihood (Biernacki et al. 2000; Daudin et al. 2008)

    ICL(K) = log p(w, z_hat; theta_hat) - (K - 1)/2 log n - K(K + 1)/2 log(n(n - 1)/2)

(``K(K+1)/2`` symmetric block pairs with a mean and a variance each, counted as
``K(K+1)/2 * 2 / 2``). Weights of absent pairs may be NaN: they are left out of the likelihood.

Louvain modularity (networkx) is the baseline, :func:`louvain`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

VARIANCE_FLOOR = 1e-6  # relative to the weights' variance: keeps a constant block's s2 positive


@dataclass
class SBMFit:
    labels: np.ndarray  # (n,) hard block of each node, blocks ordered by mean within-block weight
    tau: np.ndarray  # (n, K) posterior block probabilities
    mu: np.ndarray  # (K, K) block-pair mean weight
    var: np.ndarray  # (K, K) block-pair weight variance
    pi: np.ndarray  # (K,) block proportions
    elbo: float
    icl: float


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, n_iter: int = 50) -> np.ndarray:
    """Plain k-means++ (for the spectral initialisation)."""
    n = len(points)
    centres = [points[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min([np.sum((points - c) ** 2, axis=1) for c in centres], axis=0)
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1 / n)
        centres.append(points[rng.choice(n, p=p)])
    centres = np.array(centres)
    labels = np.zeros(n, dtype=int)
    for _ in range(n_iter):
        d2 = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
        new = d2.argmin(1)
        if (new == labels).all() and _ > 0:
            break
        labels = new
        for j in range(k):
            if (labels == j).any():
                centres[j] = points[labels == j].mean(0)
    return labels


def _spectral_init(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Blocks from k-means on the leading eigenvectors of the (mean-filled) weight matrix."""
    w = np.where(np.isfinite(weights), weights, np.nanmean(weights))
    np.fill_diagonal(w, 0)
    values, vectors = np.linalg.eigh(w)
    top = np.argsort(-np.abs(values))[:k]
    return _kmeans(vectors[:, top] * np.abs(values[top]), k, rng)


class _Graph:
    """Sufficient statistics of a symmetric weight matrix with missing pairs and no self-loops."""

    def __init__(self, weights: np.ndarray):
        w = np.asarray(weights, dtype=np.float64)
        self.n = len(w)
        self.obs = np.isfinite(w) & ~np.eye(self.n, dtype=bool)
        self.w = np.where(self.obs, w, 0.0)
        self.w2 = self.w**2
        self.m = self.obs.astype(np.float64)
        self.n_pairs = self.m.sum() / 2
        spread = np.var(w[self.obs]) if self.n_pairs else 1.0
        self.var_floor = VARIANCE_FLOOR * max(spread, 1e-12)

    def m_step(self, tau: np.ndarray):
        """Closed-form block proportions, means and variances given tau."""
        pi = np.maximum(tau.mean(0), 1e-10)
        pi /= pi.sum()
        count = tau.T @ self.m @ tau
        s1 = tau.T @ self.w @ tau
        s2 = tau.T @ self.w2 @ tau
        safe = np.maximum(count, 1e-10)
        mu = s1 / safe
        var = np.maximum(s2 / safe - mu**2, self.var_floor)
        return pi, mu, var

    def node_loglik(self, tau: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
        """(n, K): sum over nodes j and blocks l of tau_jl log N(w_ij; mu_kl, var_kl)."""
        a = -0.5 * (np.log(2 * np.pi * var) + mu**2 / var)  # constant part
        b = mu / var  # coefficient of w
        c = -0.5 / var  # coefficient of w^2
        mt, wt, w2t = self.m @ tau, self.w @ tau, self.w2 @ tau
        return mt @ a.T + wt @ b.T + w2t @ c.T

    def elbo(self, tau, pi, mu, var) -> float:
        entropy = -np.sum(tau * np.log(np.maximum(tau, 1e-300)))
        expected = 0.5 * np.sum(tau * self.node_loglik(tau, mu, var))  # each pair counted twice
        return float(expected + np.sum(tau @ np.log(pi)) + entropy)


def fit_sbm_fixed_k(
    weights: np.ndarray,
    k: int,
    *,
    restarts: int = 3,
    n_iter: int = 200,
    tol: float = 1e-7,
    random_state: int | np.random.Generator | None = 0,
) -> SBMFit:
    """Variational EM for ``k`` blocks; the best of a spectral start and ``restarts - 1`` random
    ones by the evidence lower bound."""
    rng = np.random.default_rng(random_state)
    graph = _Graph(weights)
    n = graph.n
    best: SBMFit | None = None
    for start in range(max(1, restarts)):
        if k == 1:
            tau = np.ones((n, 1))
        else:
            labels = _spectral_init(weights, k, rng) if start == 0 else rng.integers(k, size=n)
            tau = np.full((n, k), 0.05 / max(k - 1, 1))
            tau[np.arange(n), labels] = 0.95
        previous = -np.inf
        for _ in range(n_iter):
            pi, mu, var = graph.m_step(tau)
            # fixed point of tau: a few damped sweeps of the mean-field update
            for _ in range(3):
                log_tau = np.log(pi)[None, :] + graph.node_loglik(tau, mu, var)
                tau = np.exp(log_tau - logsumexp(log_tau, axis=1, keepdims=True))
                tau = np.maximum(tau, 1e-12)
                tau /= tau.sum(1, keepdims=True)
            elbo = graph.elbo(tau, pi, mu, var)
            if abs(elbo - previous) <= tol * abs(elbo):
                break
            previous = elbo
        pi, mu, var = graph.m_step(tau)
        elbo = graph.elbo(tau, pi, mu, var)
        if best is None or elbo > best.elbo:
            best = _finish(graph, tau, pi, mu, var, elbo)
    return best


def _finish(graph: _Graph, tau, pi, mu, var, elbo) -> SBMFit:
    """Hard labels, the ICL, and blocks reordered by decreasing within-block mean weight."""
    k = tau.shape[1]
    hard = np.eye(k)[tau.argmax(1)]
    h_pi, h_mu, h_var = graph.m_step(hard)
    # complete-data log-likelihood at the hard assignment with its own ML parameters
    loglik = 0.5 * np.sum(hard * graph.node_loglik(hard, h_mu, h_var))
    loglik += np.sum(hard.sum(0) * np.log(np.maximum(h_pi, 1e-300)))
    n = graph.n
    icl = loglik - (k - 1) / 2 * np.log(n) - k * (k + 1) / 2 * np.log(max(graph.n_pairs, 2))
    labels = tau.argmax(1)
    used = np.unique(labels)
    order = used[np.argsort(-np.diag(mu)[used])]
    relabel = np.full(k, -1)
    relabel[order] = np.arange(len(order))
    return SBMFit(
        labels=relabel[labels],
        tau=tau,
        mu=mu,
        var=var,
        pi=pi,
        elbo=float(elbo),
        icl=float(icl),
    )


def fit_sbm(
    weights: np.ndarray,
    *,
    max_blocks: int = 8,
    restarts: int = 3,
    random_state: int = 0,
) -> tuple[SBMFit, dict[int, float]]:
    """The weighted SBM whose block count (1..max_blocks) maximises the ICL, and the ICL per K.

    Scanning stops two block counts past the last ICL improvement (the ICL is unimodal in
    practice, and larger K costs more)."""
    n = len(weights)
    fits: dict[int, SBMFit] = {}
    best_k = 1
    for k in range(1, min(max_blocks, n) + 1):
        fits[k] = fit_sbm_fixed_k(weights, k, restarts=restarts, random_state=random_state + k)
        if fits[k].icl > fits[best_k].icl:
            best_k = k
        elif k - best_k >= 2:
            break
    return fits[best_k], {k: f.icl for k, f in fits.items()}


def louvain(weights: np.ndarray, *, resolution: float = 1.0, seed: int = 0) -> np.ndarray:
    """Louvain modularity communities (networkx) of a weighted graph; labels by decreasing size."""
    import networkx as nx

    w = np.where(np.isfinite(weights), weights, 0.0)
    n = len(w)
    i, j = np.triu_indices(n, k=1)
    keep = w[i, j] > 0
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from(zip(i[keep], j[keep], w[i, j][keep], strict=True))
    communities = nx.community.louvain_communities(
        graph, weight="weight", resolution=resolution, seed=seed
    )
    labels = np.empty(n, dtype=int)
    for label, members in enumerate(sorted(communities, key=len, reverse=True)):
        labels[list(members)] = label
    return labels
