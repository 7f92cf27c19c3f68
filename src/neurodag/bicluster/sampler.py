"""MCMC for Bayesian bi-clustering of spike counts (Wei et al., "Bayesian Bi-clustering of Neural
Spiking Activity with Latent Structures").

Model (neurons ``i``, time bins ``t``, neuron clusters ``k``, dynamical states ``s``):

- ``y_it ~ NB(r_i, mean lambda_it)``, ``log lambda_it = delta_i + mu_{z_i,t} + c_i' x_{z_i,t}``;
- each cluster's latent ``h_kt = (mu_kt, x_kt)`` (``1 + p`` dims) follows switching affine
  dynamics ``h_kt = b_{s_t,k} + A_{s_t,k} h_{k,t-1} + e``, ``e ~ N(0, Q_{s_t,k})``, with
  ``(b, A, Q)`` under a matrix-normal inverse-Wishart prior. The dynamics are block-diagonal
  across clusters (each cluster has its own ``(b, A, Q)`` per state; the paper's full stacked
  ``A`` also couples clusters) so the latent dimension does not change as clusters appear and
  vanish, and the Kalman recursions run batched over clusters;
- the states ``s_t`` follow a sticky HDP-HMM in its weak-limit approximation (Fox et al. 2011)
  with ``n_states_max`` states;
- the labels ``z_i`` follow a mixture of finite mixtures (Miller & Harrison 2018) over at most
  ``n_clusters_max`` clusters, so the number of clusters is inferred.

One Gibbs sweep: labels by the MFM Gibbs rule with the neuron's (delta, c) integrated out by a
Laplace approximation (as in Wei et al.'s partially collapsed sampler), then (delta, c) drawn from
that Laplace Gaussian; Polya-Gamma variables ``omega ~ PG(y + r, psi)``
(``psi = log lambda - log r``; drawn from the gamma-sum series of Polson, Scott & Windle 2013, see
:func:`random_polya_gamma`) turn the NB likelihood into Gaussian pseudo-observations; during
burn-in, merge-split moves on the labels; boundary shifts, segment births and deaths and block
moves of the states with a window of latents integrated out; latents by batched forward-filtering
backward-sampling; ``(delta, c)`` by their conjugate Gaussian update (the same omega serves both
Gaussian blocks); affine moves along the likelihood-invariant directions; states by
forward-filtering backward-sampling of the HMM; transition rows and the weak-limit ``beta`` by the
auxiliary-variable updates of Fox et al.; dynamics by MNIW; dispersions ``r_i`` by a few
random-walk Metropolis steps on ``log r`` (step sizes adapted during burn-in); then
``continuous_scans - 1`` more scans of the continuous blocks (omega, latents, (delta, c),
dynamics, dispersions).

Mixing of the states: given the latents the states are all but fixed (a trajectory drawn under
one state's dynamics is implausible under another's), so FFBS given the latents leaves segment
boundaries frozen and separate chains disagree (split R-hat up to 5.8 on the state occupancy in
the default run). Before the latents are drawn, Metropolis moves shift segment boundaries, and
give birth to and remove short segments (inside a run or at either end of the sequence;
optionally, collapsed Gibbs updates redraw the state of single bins), each with the latents of a
window around the changed bins integrated out given the PG variables and the latents outside the
window (a Metropolis-within-Gibbs step on the states and the window's latents, van Dyk & Park
2008), at a cost that does not grow with T; block moves redraw a few bins around a boundary
jointly, for modes that a shift and a birth together separate.

Redundant directions: the likelihood sees only offset + mu + loading' x, so a cluster's latents
can move by any affine map h -> M h + v (shifts, scales and shears, M leaving mu out of x) with
its neurons' offsets and loadings mapped back; Gibbs steps move along these directions by tiny
steps (effective sample sizes of 1-14 per 1000 draws in the default run). Generalised Gibbs
moves along these group actions (Liu & Sabatti 2000), with the dynamics integrated out, mix
them, and through the priors the log rates too (measured: see ``Settings.redundant_steps``); they
run from the second half of the burn-in on. Everything is
vectorised numpy; the only Python loops run over the moves, over blocks of time bins (HMM
forward filter) and over neurons (labels, merge-split allocation).

Merge-split: the label Gibbs step moves one neuron at a time, so it cannot split a cluster that
holds two planted clusters (a bad early merge) and only slowly empties a duplicate. The
sequentially-allocated merge-split sampler of Dahl (2005; Dahl & Newcomb 2022) proposes splitting
a cluster (its members allocated one by one to two groups seeded by two random neurons) or
merging two clusters, accepted by Metropolis-Hastings with the partition's MFM prior and each
cluster's evidence. Given omega, (delta, c) and the dynamics, a cluster's trajectory is Gaussian,
so its evidence integrates the trajectory out exactly (banded Cholesky of the block-tridiagonal
posterior precision). The dynamics are integrated out as well, by Chib's identity (Chib 1995)
with the MNIW evidence of a drawn trajectory: evidence given dynamics fitted to the current
clusters favours keeping them (a split-off half of a planted cluster brings its own fitted
dynamics, about a hundred nats of fit in the default run, and was never merged back). A
proposed split is evaluated with each part's neurons at their Laplace modes under the part's
own trajectory, as a merge is with the merged-in neurons' modes. The initial labels over-split
on purpose (k-subspaces with more clusters than expected: pure clusters), which merges then
repair.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.special import gammaln, logsumexp

from neurodag.config import defaults

_CONFIG = defaults("stages.bicluster")  # the schema is the one source of defaults


@dataclass
class Settings:
    """Model and sampler settings: the bicluster stage's config keys (defaults from the schema)
    and the model's fixed priors."""

    n_iterations: int = _CONFIG["n_iterations"]
    burn_in: int = _CONFIG["burn_in"]
    check_every: int = _CONFIG["check_every"]
    thin: int = _CONFIG["thin"]
    latent_dim: int = _CONFIG["latent_dim"]
    n_clusters_max: int = _CONFIG["n_clusters_max"]
    n_clusters_init: int = _CONFIG["n_clusters_init"]  # over-split: merges are easier than splits
    n_states_max: int = _CONFIG["n_states_max"]
    mfm_gamma: float = 1.0  # Dirichlet concentration of the MFM weights
    mfm_poisson_rate: float = 1.0  # K - 1 ~ Poisson(rate)
    hmm_alpha: float = 1.0
    hmm_gamma: float = 1.0
    hmm_kappa: float = _CONFIG["hmm_kappa"]  # self-transition bias ("sticky")
    loading_sd: float = 1.0
    offset_sd: float = 1.0
    dispersion_shape: float = 2.0  # Gamma prior on r
    dispersion_rate: float = 0.1
    noise_prior_scale: float = 0.01  # prior mean of the latent noise variances
    coefficient_prior_sd: float = 1.0  # prior sd of (b, A) around (0, I)
    laplace_steps: int = 4  # Newton steps to the Laplace mode from the prior mean
    laplace_warm_steps: int = 2  # from last sweep's modes (slots evaluated with equal occupancy)
    dispersion_steps: int = 5  # Metropolis steps on log r per sweep
    # Boundary-shift proposals per sweep (at least two per boundary) and the most bins a boundary
    # moves per proposal: 60 and 2 (was 20 and 4) take the state occupancy's ESS from 80-143 to
    # 131-262 per 2 x 1000 draws in the default run (five runs), at no cost at real size (where
    # two per boundary are more than 60 already).
    state_moves: int = 60
    state_shift_max: int = 2
    # Birth/death proposals of short segments per sweep (at most segment_max bins): without
    # them the boundary shifts keep the number of segments fixed after burn-in, and a spurious
    # one-bin segment in one chain stays there for good. 60 rather than 20: a bin with ~1% of
    # its mass on another state (bin 290 of the default run's counts) is proposed a birth once
    # in ~80 sweeps with 60 and once in ~250 with 20; on sampler seed 2, 2 x 2,400 iterations,
    # its co-clustering ESS went 89 -> over 380, for 8% more time per sweep.
    segment_moves: int = 60
    segment_max: int = 4
    segment_end_births: float = 0.2  # share of the births put at an end of the sequence
    # Block moves per sweep: the states of state_block_size bins around a boundary redrawn
    # jointly (sample_states_collapsed). Some state sequences have two modes one boundary
    # shift plus one one-bin segment apart (default run's counts, bins 287-290: a boundary one
    # bin earlier and a blip of the old state two bins later, ~1.5% of the mass); no single
    # shift, birth or death links them, so excursions lasted ~30 sweeps (sampler seed 4: the
    # co-clustering ESS of bin 290 was 64 after 2 x 2,400 iterations).
    state_block_moves: int = 10
    state_block_size: int = 5
    state_move_margin: int = 8  # bins of latents integrated out on each side of a state move
    # Random bins per sweep whose state is drawn by collapsed Gibbs: off by default. On the
    # default run's counts, 8 sampler seeds each (2 x 1200, with the burn-in state merges):
    # with 20, worst R-hat 1.039-1.073 (median 1.056), smallest ESS 21-77 (median 32); with 0,
    # 1.038-1.426 (median 1.044; one seed with a boundary the chains disagree on) and 4-64
    # (median 45), at 10% less time per sweep.
    state_gibbs_bins: int = 0
    # Random-walk Metropolis steps per sweep along each affine map of a cluster's latents
    # (sample_redundant). The latents' mean, scale and rotation against the offsets and
    # loadings mix slowly under Gibbs (ESS 2-10 per 1000 sweeps), and the priors, not being
    # invariant to them, carry that into the log rates: on the paper's simulation (seed 0,
    # 2 x 1000 draws) the smallest log-rate ESS went 58 -> 226 with 3 steps.
    redundant_steps: int = 3
    split_merge_proposals: int = _CONFIG["split_merge_proposals"]  # per burn-in sweep
    # Scans of the continuous blocks (PG draw, latents, offsets and loadings, dynamics,
    # dispersion) per sweep: they are cheap beside the label and state moves at the default
    # size, and the log rates of weakly observed bins are their slowest quantity. 3 instead of
    # 1 took the default run's smallest ESS from 57 to 122 (2 x 1000 draws, sampler seed 0) at
    # 43% more time per sweep; with the affine moves, 2 did as well as 3 on the paper's
    # simulation (seed 0, 2 x 1000 draws: smallest ESS 26 with 1 scan, 103 with 2, 108 with
    # 3), for less time at real size.
    continuous_scans: int = _CONFIG["continuous_scans"]
    pg_terms: int = 3  # gamma terms of the Polya-Gamma draws drawn exactly (random_polya_gamma)
    seed: int = _CONFIG["seed"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChainState:
    z: np.ndarray  # (N,) cluster slot of each neuron
    s: np.ndarray  # (T,) state of each bin
    h: np.ndarray  # (K, T, d) latents per cluster slot: (mu, x)
    offset: np.ndarray  # (N,)
    loading: np.ndarray  # (N, p)
    dispersion: np.ndarray  # (N,)
    A: np.ndarray  # (L, K, d, d)
    b: np.ndarray  # (L, K, d)
    Q: np.ndarray  # (L, K, d, d)
    trans: np.ndarray  # (L, L)
    beta: np.ndarray  # (L,)
    extras: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Small helpers


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def nb_loglik(y: np.ndarray, log_mean: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Elementwise log NB(y | mean exp(log_mean), dispersion r), r broadcast against y."""
    psi = log_mean - np.log(r)
    return gammaln(y + r) - gammaln(r) - gammaln(y + 1.0) + y * psi - (y + r) * _softplus(psi)


def _batched_mvn(rng: np.random.Generator, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    jitter = 1e-9 * np.eye(cov.shape[-1])
    chol = np.linalg.cholesky(cov + jitter)
    return mean + np.einsum("...ij,...j->...i", chol, rng.standard_normal(mean.shape))


def _batched_inverse_wishart(
    rng: np.random.Generator, dof: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Draws of IW(dof, scale) for a batch (..., d, d) via the Bartlett decomposition."""
    d = scale.shape[-1]
    batch = scale.shape[:-2]
    precision_chol = np.linalg.cholesky(np.linalg.inv(scale))  # Wishart(dof, scale^-1) factor
    lower = np.zeros(batch + (d, d))
    rows, cols = np.tril_indices(d, -1)
    lower[..., rows, cols] = rng.standard_normal(batch + (rows.size,))
    dof = np.broadcast_to(dof, batch)
    for j in range(d):
        lower[..., j, j] = np.sqrt(rng.chisquare(dof - j))
    factor = precision_chol @ lower
    wishart = factor @ np.swapaxes(factor, -1, -2)
    return np.linalg.inv(wishart)


def polya_gamma_moments(b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and variance of PG(b, c) (Polson, Scott & Windle 2013):
    b tanh(c/2) / (2c) and b (sinh c - c) / (4 c^3 cosh^2(c/2)); b / 4 and b / 24 at c = 0
    (series near 0, where the closed forms cancel)."""
    b, c = np.asarray(b, dtype=float), np.abs(np.asarray(c, dtype=float))
    small = c < 1e-3
    cs = np.where(small, 1.0, c)
    c2 = c * c
    mean = np.where(small, b * (0.25 - c2 / 48.0), 0.5 * b * np.tanh(0.5 * cs) / cs)
    # (sinh c - c) / cosh^2(c/2) = 2 (sinh c - c) / (cosh c + 1), without overflow for large c
    e = np.exp(-np.minimum(cs, 700.0))
    ratio = 2.0 * (0.5 * (1.0 - e * e) - cs * e) / (0.5 * (1.0 + e * e) + e)
    var = np.where(small, b * (1.0 / 24.0 - c2 / 240.0), 0.25 * b * ratio / cs**3)
    return mean, var


def random_polya_gamma(
    rng: np.random.Generator, b: np.ndarray, c: np.ndarray, n_terms: int
) -> np.ndarray:
    """Draws of PG(b, c) (elementwise; b > 0) from its representation as an infinite weighted
    sum of gamma variables (Polson, Scott & Windle 2013, eq. 1):
    ``PG(b, c) = 2 sum_k g_k / (4 pi^2 (k - 1/2)^2 + c^2)``, ``g_k ~ Gamma(b, 1)``.
    The first ``n_terms`` terms are drawn exactly; the remainder (a sum of many small
    independent terms) is drawn as one gamma variable with the remainder's exact mean and
    variance (the total's exact moments, :func:`polya_gamma_moments`, less those of the drawn
    terms). So every draw has the exact mean and variance for any (b, c); with 3 terms the
    third cumulant errs by under 0.01% for |c| <= 4 (the counts' range), 4% at |c| = 20 and
    20-30% for |c| >= 60, where the law is close to normal (skewness under 0.2 at b = 8).
    So the draws are approximate beyond the second cumulant: the chain targets the posterior
    up to that error. About 4x faster than the ``polyagamma`` package's hybrid sampler at
    b ~ 10-30 (0.04 s vs 0.19 s for 67 x 3,000 draws)."""
    b = np.asarray(b, dtype=float)
    c = np.abs(np.asarray(c, dtype=float))
    c2 = c * c
    head, weight_sum, weight_sq = np.zeros_like(c2), np.zeros_like(c2), np.zeros_like(c2)
    for k in np.arange(1, n_terms + 1) - 0.5:  # one term at a time: no (..., n_terms) arrays
        weight = 2.0 / (4.0 * math.pi**2 * k**2 + c2)
        head += weight * rng.standard_gamma(b)
        weight_sum += weight
        weight_sq += weight * weight
    mean, var = polya_gamma_moments(b, c)
    rest_mean = mean - b * weight_sum
    rest_var = var - b * weight_sq
    # The remainder's moments are positive in exact arithmetic; guard the rounding.
    rest_mean = np.maximum(rest_mean, 1e-300)
    rest_var = np.maximum(rest_var, 1e-300)
    return head + (rest_var / rest_mean) * rng.standard_gamma(rest_mean * rest_mean / rest_var)


def log_mfm_coefficients(n: int, max_clusters: int, gamma: float, rate: float) -> np.ndarray:
    """log V_n(t), t = 0..max_clusters + 1 (Miller & Harrison 2018), K - 1 ~ Poisson(rate)."""
    ks = np.arange(1, max(200, 4 * max_clusters) + 1)
    log_prior_k = (ks - 1) * math.log(rate) - rate - gammaln(ks)
    out = np.full(max_clusters + 2, -np.inf)
    for t in range(1, max_clusters + 2):
        valid = ks >= t
        k = ks[valid]
        terms = (
            gammaln(k + 1)
            - gammaln(k - t + 1)  # k_(t)
            - (gammaln(gamma * k + n) - gammaln(gamma * k))  # (gamma k)^(n)
            + log_prior_k[valid]
        )
        out[t] = logsumexp(terms)
    return out


# ---------------------------------------------------------------------------------------------
# Gibbs steps


class BiclusterSampler:
    """One MCMC chain on counts ``y`` (N neurons x T bins)."""

    def __init__(self, counts: np.ndarray, settings: Settings, seed: int | None = None):
        self.y = np.asarray(counts, dtype=float)
        self.N, self.T = self.y.shape
        self.cfg = settings
        self.p = settings.latent_dim
        self.d = 1 + self.p
        self.K = min(settings.n_clusters_max, self.N)
        self.L = settings.n_states_max
        self.rng = np.random.default_rng(settings.seed if seed is None else seed)
        self.offset_center = np.log(self.y.mean(axis=1) + 0.1)
        self.log_v = log_mfm_coefficients(
            self.N, self.K, settings.mfm_gamma, settings.mfm_poisson_rate
        )
        # MNIW prior on W = [b, A] (d x (d+1)), regressor u = (1, h_{t-1}).
        self.M0 = np.concatenate([np.zeros((self.d, 1)), np.eye(self.d)], axis=1)
        self.V0_inv = np.eye(self.d + 1) / settings.coefficient_prior_sd**2
        self.nu0 = self.d + 2.0
        self.Psi0 = settings.noise_prior_scale * (self.nu0 - self.d - 1) * np.eye(self.d)
        # Each neuron's distinct counts and their multiplicities (NB likelihood of r).
        counts = np.rint(self.y).astype(np.int64)
        keys, weight = np.unique(
            np.arange(self.N)[:, None] * (counts.max() + 1) + counts, return_counts=True
        )
        self._count_histogram = (keys // (counts.max() + 1), keys % (counts.max() + 1), weight)
        self._count_total = self.y.sum(axis=1)
        self.split_merge_active = True  # Chain.advance switches it off after burn-in
        self.burn_in = False  # Chain.advance sets it during burn-in: step sizes adapt
        # Chain.advance switches the affine moves off in the first half of the burn-in: there
        # they disturbed the merge-split moves (default counts, sampler seed 2: a chain kept
        # an extra cluster), and their step sizes still adapt in the second half.
        self.redundant_active = True

    # -- initialisation ------------------------------------------------------------------------

    def initial_state(self, labels: np.ndarray | None = None) -> ChainState:
        """Initial chain state: k-subspaces labels (or the given ``labels``), each cluster's
        latents and the neurons' loadings from its smoothed log rates, speed-based states."""
        rng, cfg, N, d, K, L = self.rng, self.cfg, self.N, self.d, self.K, self.L
        from scipy.ndimage import gaussian_filter1d

        smooth = np.log(gaussian_filter1d(self.y, 3.0, axis=1, mode="nearest") + 0.5)
        if labels is None:
            k_init = max(1, min(cfg.n_clusters_init, K, N))
            z = _k_subspaces(smooth - smooth.mean(axis=1, keepdims=True), k_init, d, rng)
        else:
            z = np.asarray(labels, dtype=np.int64).copy()
        h, offset, loading = self._initial_latents(smooth, z)
        s = _speed_states(h[np.unique(z), :, 1:], min(L, 2), rng)
        state = ChainState(
            z=z,
            s=s,
            h=h,
            offset=offset,
            loading=loading,
            dispersion=np.full(N, 10.0),
            A=np.broadcast_to(np.eye(d), (L, K, d, d)).copy(),
            b=np.zeros((L, K, d)),
            Q=np.broadcast_to(cfg.noise_prior_scale * np.eye(d), (L, K, d, d)).copy(),
            trans=np.full((L, L), 1.0 / L),
            beta=np.full(L, 1.0 / L),
        )
        self.sample_dynamics(state)
        return state

    def _initial_latents(self, smooth: np.ndarray, z: np.ndarray) -> tuple:
        """Latents: mean and top principal components of each cluster's smoothed log rates;
        offsets: the neurons' mean smoothed log rates; loadings: the principal scores."""
        T, p = self.T, self.p
        h = np.zeros((self.K, T, self.d))
        offset = smooth.mean(axis=1)
        loading = np.zeros((self.N, p))
        for k in np.unique(z):
            members = z == k
            block = smooth[members] - offset[members, None]
            h[k, :, 0] = block.mean(axis=0)
            resid = block - h[k, :, 0]
            u, sv, vt = np.linalg.svd(resid, full_matrices=False)
            q = min(p, vt.shape[0])
            scale = sv[:q] / np.sqrt(max(members.sum(), 1))
            h[k, :, 1 : 1 + q] = (vt[:q] * scale[:, None]).T
            loading[members, :q] = u[:, :q] * np.sqrt(max(members.sum(), 1))
        return h, offset, loading

    # -- observation model ---------------------------------------------------------------------

    def log_mean(self, st: ChainState) -> np.ndarray:
        hz = st.h[st.z]  # (N, T, d)
        return st.offset[:, None] + hz[..., 0] + np.einsum("np,ntp->nt", st.loading, hz[..., 1:])

    def sample_polya_gamma(self, st: ChainState) -> np.ndarray:
        psi = self.log_mean(st) - np.log(st.dispersion)[:, None]
        shape = self.y + st.dispersion[:, None]
        return random_polya_gamma(self.rng, shape, psi, self.cfg.pg_terms)

    def _laplace(self, h: np.ndarray, theta: np.ndarray, steps: int, rows: np.ndarray, r) -> tuple:
        """Newton steps to the mode of each (slot, neuron)'s (offset, loading) posterior given the
        slots' trajectories h (S, T, d), for the neurons ``rows`` (dispersions r), from theta
        (S, n, d); batched over slots in the layout (slot, neuron, time) so every product is a
        stacked matmul. Returns the modes, the Hessians of the negative log posterior there
        (S, n, d, d) and the Laplace log marginal likelihoods (S, n), up to terms free of the
        slot."""
        cfg, d, S = self.cfg, self.d, h.shape[0]
        y, r = self.y[rows], r[rows]
        design = np.concatenate([np.ones((S, self.T, 1)), h[..., 1:]], axis=-1)
        design_t = np.swapaxes(design, 1, 2)  # (S, d, T)
        mu = h[:, None, :, 0]  # (S, 1, T)
        prior_prec = np.diag([1.0 / cfg.offset_sd**2] + [1.0 / cfg.loading_sd**2] * self.p)
        prior_mean = np.zeros((len(rows), d))
        prior_mean[:, 0] = self.offset_center[rows]
        log_r = np.log(r)[:, None]
        total = y + r[:, None]  # y + r, (n, T)
        outer = (design[..., :, None] * design[..., None, :]).reshape(S, self.T, d * d)

        def hessian(prob):
            weight = total * prob * (1.0 - prob)  # (S, n, T)
            return (weight @ outer).reshape(S, len(rows), d, d) + prior_prec

        def log_odds(theta):  # psi = mu + offset + loading' x - log r, (S, n, T)
            shifted = theta.copy()
            shifted[..., 0] -= log_r[:, 0]  # the design's first column is 1
            psi = shifted @ design_t
            psi += mu
            return psi

        for _ in range(steps):
            prob = _sigmoid(log_odds(theta))
            grad = (y - total * prob) @ design - (theta - prior_mean) @ prior_prec
            theta = theta + np.linalg.solve(hessian(prob), grad[..., None])[..., 0]
        psi = log_odds(theta)
        e = np.exp(np.minimum(psi, 700.0))  # one exp serves softplus and sigmoid
        loglik = np.einsum("snt,nt->sn", psi, y) - np.einsum("snt,nt->sn", np.log1p(e), total)
        hess = hessian(e / (1.0 + e))
        diff = theta - prior_mean
        log_prior = -0.5 * np.einsum("knd,de,kne->kn", diff, prior_prec, diff)
        return theta, hess, loglik + log_prior - 0.5 * np.linalg.slogdet(hess)[1]

    def sample_labels(self, st: ChainState) -> None:
        """MFM Gibbs for z with (delta_i, c_i) integrated out by a Laplace approximation."""
        cfg, K, d = self.cfg, self.K, self.d
        r = st.dispersion
        # Every empty slot carries the null trajectory (h = 0), so all empty slots share one
        # marginal: evaluate the occupied slots and one empty representative, then broadcast.
        occupied_slots = np.flatnonzero(np.bincount(st.z, minlength=K) > 0)
        empty_slots = np.setdiff1d(np.arange(K), occupied_slots)
        slots = np.concatenate([occupied_slots, empty_slots[:1]])
        column = np.full(K, len(occupied_slots))  # slot -> column of the evaluated marginals
        column[occupied_slots] = np.arange(len(occupied_slots))
        h = st.h[slots]
        prior_mean = np.zeros((self.N, d))
        prior_mean[:, 0] = self.offset_center
        theta = np.broadcast_to(prior_mean, (len(slots), self.N, d)).copy()
        theta[..., 0] -= h[..., 0].mean(axis=1)[:, None]
        steps = cfg.laplace_steps
        # Warm start: every evaluated slot was evaluated last sweep with the same occupancy (its
        # trajectory moved a little since), so Newton starts next to the mode and needs fewer
        # steps.
        is_occupied = np.zeros(K, dtype=bool)
        is_occupied[occupied_slots] = True
        previous = st.extras.get("laplace_start")
        if previous is not None and np.array_equal(previous[2][slots], is_occupied[slots]):
            theta = previous[0][previous[1][slots]].copy()
            steps = cfg.laplace_warm_steps
        theta, hess, log_marginal = self._laplace(h, theta, steps, np.arange(self.N), r)
        log_marginal = log_marginal.T  # (N, slots)
        log_marginal = log_marginal[:, column]  # (N, K): back to all slots
        K = self.K

        z = st.z.copy()
        sizes = np.bincount(z, minlength=K)
        for i in self.rng.permutation(self.N):
            sizes[z[i]] -= 1
            occupied = sizes > 0
            n_occupied = int(occupied.sum())
            empty = np.flatnonzero(~occupied)
            logw = np.full(K, -np.inf)
            logw[occupied] = np.log(sizes[occupied] + cfg.mfm_gamma)
            if empty.size:
                new_mass = (
                    math.log(cfg.mfm_gamma)
                    + self.log_v[n_occupied + 1]
                    - self.log_v[n_occupied]
                    - math.log(empty.size)
                )
                logw[empty] = new_mass
            logw = logw + log_marginal[i]
            w = np.exp(logw - logw.max())
            z[i] = self.rng.choice(K, p=w / w.sum())
            sizes[z[i]] += 1
        st.z = z
        # The modes under every evaluated slot serve the merge proposals of this sweep.
        st.extras["laplace_modes"], st.extras["laplace_column"] = theta, column
        st.extras["laplace_start"] = (theta, column, is_occupied)
        # Draw each neuron's (delta, c) from the Laplace Gaussian of its new cluster.
        idx = np.arange(self.N)
        cov = np.linalg.inv(hess[column[z], idx])
        draw = _batched_mvn(self.rng, theta[column[z], idx], cov)
        st.offset, st.loading = draw[:, 0], draw[:, 1:]

    def _transition_dynamics(self, st: ChainState, slots: np.ndarray) -> tuple:
        """(A, b, Q^-1) of every transition t-1 -> t (t >= 1) for the given slots, (G, T-1, ...);
        slot -1 stands for the empty-slot dynamics (the prior mean: A = I, b = 0)."""
        d, L = self.d, self.L
        A = np.concatenate([st.A, np.broadcast_to(np.eye(d), (L, 1, d, d))], axis=1)
        b = np.concatenate([st.b, np.zeros((L, 1, d))], axis=1)
        Q = np.concatenate(
            [st.Q, np.broadcast_to(self.cfg.noise_prior_scale * np.eye(d), (L, 1, d, d))], axis=1
        )
        idx = np.where(slots < 0, self.K, slots)
        states = st.s[1:]
        Q_inv = np.linalg.inv(Q[:, idx])  # (L, G, d, d): one inverse per state and slot
        return (
            np.swapaxes(A[states][:, idx], 0, 1),
            np.swapaxes(b[states][:, idx], 0, 1),
            np.swapaxes(Q_inv[states], 0, 1),
        )

    def _pseudo_observation_design(self, st: ChainState, omega, offset, loading) -> tuple:
        """Each neuron's design row g = (1, loading) (N, d), its outer product (N, d*d), and
        omega times its PG pseudo-observation (N, T)."""
        kappa = 0.5 * (self.y - st.dispersion[:, None])
        g = np.concatenate([np.ones((self.N, 1)), loading], axis=1)
        shift = kappa + omega * (np.log(st.dispersion) - offset)[:, None]
        gg = (g[:, :, None] * g[:, None, :]).reshape(self.N, -1)
        return g, gg, shift

    def _pseudo_information(
        self, st: ChainState, omega: np.ndarray, member: np.ndarray, offset, loading
    ) -> tuple[np.ndarray, np.ndarray]:
        """Information of the PG pseudo-observations about each group's trajectory: precision
        blocks (G, T, d, d) and linear term (G, T, d), member: (G, N) 0/1."""
        T, d = self.T, self.d
        g, gg, shift = self._pseudo_observation_design(st, omega, offset, loading)
        info_mat = ((member[:, :, None] * omega[None]).transpose(0, 2, 1) @ gg).reshape(-1, T, d, d)
        info_vec = (member[:, :, None] * shift[None]).transpose(0, 2, 1) @ g  # (G, T, d)
        return info_mat, info_vec

    def sample_latents(self, st: ChainState, omega: np.ndarray) -> None:
        """Draw every occupied cluster's whole latent trajectory given the PG pseudo-observations.

        The posterior of a trajectory is Gaussian with a block-tridiagonal precision; its banded
        Cholesky factor gives exactly the forward-filtering backward-sampling draw in one LAPACK
        call for all clusters (blocks of different clusters are uncoupled, dynamics being
        block-diagonal), instead of a Python loop over time bins.
        """
        T, d = self.T, self.d
        occupied = np.flatnonzero(np.bincount(st.z, minlength=self.K) > 0)
        member = (st.z[None, :] == occupied[:, None]).astype(float)
        info_mat, info_vec = self._pseudo_information(st, omega, member, st.offset, st.loading)
        diag, off, lin = _trajectory_prior(*self._transition_dynamics(st, occupied))
        chol, white = _banded_cholesky(diag + info_mat, off, lin + info_vec)
        draw = _banded_draw(chol, white, self.rng)
        h = np.zeros((self.K, T, d))  # empty slots carry no trajectory
        h[occupied] = draw.reshape(len(occupied), T, d)
        st.h = h

    # -- split-merge ---------------------------------------------------------------------------

    def _evidence_terms(self, st, omega, offset, loading) -> tuple:
        """Per-neuron pieces of the collapsed evidence for given (offset, loading): each neuron's
        information about its cluster's trajectory (N, T, d, d) and (N, T, d), and the terms
        free of the trajectory, exp(kappa a - omega a^2 / 2) with a = offset - log r, plus the
        (offset, loading) prior, (N,)."""
        # Each neuron alone (a group of one): broadcast products, not an (N, N, T) membership.
        g, gg, shift = self._pseudo_observation_design(st, omega, offset, loading)
        info_mat = (omega[:, :, None] * gg[:, None, :]).reshape(self.N, self.T, self.d, self.d)
        info_vec = shift[:, :, None] * g[:, None, :]
        a = (offset - np.log(st.dispersion))[:, None]
        kappa = 0.5 * (self.y - st.dispersion[:, None])
        theta = np.concatenate([offset[:, None], loading], axis=1)
        theta[:, 0] -= self.offset_center
        prior_prec = np.array(
            [1.0 / self.cfg.offset_sd**2] + [1.0 / self.cfg.loading_sd**2] * self.p
        )
        neuron = (kappa * a - 0.5 * omega * a**2).sum(1) - 0.5 * (theta**2 * prior_prec).sum(1)
        return info_mat, info_vec, neuron

    def _slot_prior(self, st, slots: np.ndarray) -> tuple:
        """Trajectory prior of each slot (-1: empty-slot dynamics): precision blocks, linear term
        and log normaliser, (G, ...)."""
        diag, off, lin = _trajectory_prior(*self._transition_dynamics(st, slots))
        norm = _gaussian_log_normaliser(*_banded_cholesky(diag, off, lin))
        return diag, off, lin, norm.reshape(len(slots), -1).sum(1)

    def _group_posterior(self, groups: list[np.ndarray], prior: tuple, terms: tuple) -> tuple:
        """Banded Cholesky factor and whitened linear term of each group's trajectory posterior
        given omega (its neurons' pseudo-observations) under its slot's prior."""
        diag, off, lin, _ = prior
        info_mat, info_vec, _ = terms
        post_diag = diag + np.stack([info_mat[idx].sum(0) for idx in groups])
        post_lin = lin + np.stack([info_vec[idx].sum(0) for idx in groups])
        return _banded_cholesky(post_diag, off, post_lin)

    def _log_evidence(self, groups: list[np.ndarray], prior: tuple, terms: tuple) -> np.ndarray:
        """log of each group's PG-augmented likelihood with its trajectory integrated out
        (Gaussian given omega) under its slot's prior, times its neurons' trajectory-free terms;
        terms shared by every grouping of the same neurons are dropped."""
        post = _gaussian_log_normaliser(*self._group_posterior(groups, prior, terms))
        post = post.reshape(len(groups), -1).sum(1)
        return post - prior[3] + np.array([terms[2][idx].sum() for idx in groups])

    def _refit_groups(self, st, omega, groups, prior, rounds: int = 2) -> tuple:
        """Offsets and loadings with each group's neurons moved to their Laplace modes under
        the group's posterior-mean trajectory, alternated ``rounds`` times from the current
        values (the other neurons keep theirs). A proposed split is evaluated with them, as a
        merge is with the merged-in neurons' modes: the current loadings were fitted to the
        whole cluster's trajectory, which understates what each part explains alone."""
        offset, loading = st.offset.copy(), st.loading.copy()
        for _ in range(rounds):
            terms = self._evidence_terms(st, omega, offset, loading)
            mean = _banded_back_substitute(*self._group_posterior(groups, prior, terms))
            mean = mean.reshape(len(groups), self.T, self.d)
            for g, idx in enumerate(groups):
                theta = np.concatenate([offset[idx, None], loading[idx]], axis=1)[None]
                theta = self._laplace(
                    mean[g : g + 1], theta, self.cfg.laplace_warm_steps, idx, st.dispersion
                )[0][0]
                offset[idx], loading[idx] = theta[:, 0], theta[:, 1:]
        return offset, loading

    def _dynamics_evidence(self, st, groups, slots, prior, terms) -> np.ndarray:
        """log p(h | dynamics integrated out) - log p(h | the slot's dynamics) for a trajectory
        h drawn from each group's posterior: by Chib's identity (Chib 1995) this equals
        log p(dynamics) - log p(dynamics | h), the term that turns the evidence given the
        slot's current dynamics into one with the dynamics integrated out (here with one
        trajectory standing in for the trajectory's posterior, as an estimate), (G,).

        Evidence given dynamics that were fitted to the current clusters favours keeping them:
        a split-off group brings its own fitted (b, A, Q), about a hundred parameters' worth of
        fit in the default run, so halves of one planted cluster were never merged again (a
        wrong number of clusters in one chain for 3 of 8 sampler seeds)."""
        h = _banded_draw(*self._group_posterior(groups, prior, terms), self.rng)
        h = h.reshape(len(groups), self.T, self.d)
        A, b, Q = st.A[:, slots], st.b[:, slots], st.Q[:, slots]
        return self.dynamics_log_marginal(h, st.s) - self.dynamics_log_density(h, st.s, A, b, Q)

    def _log_partition_prior(self, sizes: np.ndarray) -> float:
        sizes = sizes[sizes > 0]
        gamma = self.cfg.mfm_gamma
        return float(self.log_v[sizes.size] + (gammaln(sizes + gamma) - gammaln(gamma)).sum())

    def _allocate(self, i, j, rest, prior, terms, target=None):
        """Sequential allocation (Dahl 2005) of ``rest`` to the groups seeded by i and j, in the
        given order: returns (groups, log proposal probability, log evidences). With ``target``
        (rest's group 0/1) it replays that allocation and returns its probability."""
        groups = [np.array([i]), np.array([j])]
        logz = self._log_evidence(groups, prior, terms)
        log_q = 0.0
        for n, m in enumerate(rest):
            grown = [np.append(groups[0], m), np.append(groups[1], m)]
            new = self._log_evidence(grown, prior, terms)
            logw = np.log([groups[0].size, groups[1].size]) + new - logz
            logw -= logsumexp(logw)
            draw = self.rng.random() >= math.exp(logw[0]) if target is None else target[n]
            side = int(draw)
            log_q += logw[side]
            groups[side] = grown[side]
            logz[side] = new[side]
        return groups, log_q, logz

    def split_merge(self, st: ChainState, omega: np.ndarray) -> None:
        """Sequentially-allocated merge-split moves (Dahl 2005) on the neuron partition, with
        each cluster's trajectory integrated out given the PG variables.

        A split sends the second group to an empty slot that takes a copy of the parent's
        dynamics (both groups are evaluated under them), each group's neurons with (offset,
        loading) refitted to the group (:meth:`_refit_groups`); a merge moves the second
        cluster's neurons, with (offset, loading) at their Laplace modes under the first
        cluster's trajectory (computed by the label step), into the first cluster. Both
        compare evidences with the dynamics integrated out (:meth:`_dynamics_evidence`).
        (Evaluating a split-off group under the empty-slot random-walk dynamics instead
        penalises separate clusters and let wrong merges through.) Because these choices are
        deterministic, the move is not exactly reversible: the chain uses it during burn-in
        only, to escape wrong early merges and splits.
        """
        rng, K = self.rng, self.K
        modes, column = st.extras.get("laplace_modes"), st.extras.get("laplace_column")
        terms = self._evidence_terms(st, omega, st.offset, st.loading)
        priors: dict[int, tuple] = {}  # slot -> its trajectory prior, computed once per call

        def prior_of(*slots):
            for slot in slots:
                if slot not in priors:
                    priors[slot] = self._slot_prior(st, np.array([slot]))
            return tuple(np.concatenate([priors[s][n] for s in slots]) for n in range(4))

        for _ in range(self.cfg.split_merge_proposals):
            z = st.z
            sizes = np.bincount(z, minlength=K)
            i, j = rng.choice(self.N, 2, replace=False)
            ki, kj = z[i], z[j]
            if ki == kj:
                empty = np.flatnonzero(sizes == 0)
                if empty.size == 0:
                    continue
                members = np.flatnonzero(z == ki)
                rest = rng.permutation(members[(members != i) & (members != j)])
                groups, log_q, _ = self._allocate(i, j, rest, prior_of(ki, ki), terms)
                offset, loading = self._refit_groups(st, omega, groups, prior_of(ki, ki))
                split_terms = self._evidence_terms(st, omega, offset, loading)
                parts = self._log_evidence(groups, prior_of(ki, ki), split_terms).sum()
                whole = self._log_evidence([members], prior_of(ki), terms)[0]
                new_sizes = sizes.copy()
                new_sizes[ki], new_sizes[empty[0]] = groups[0].size, groups[1].size
                integrated = (
                    self._dynamics_evidence(
                        st, groups, np.array([ki, ki]), prior_of(ki, ki), split_terms
                    ).sum()
                    - self._dynamics_evidence(st, [members], np.array([ki]), prior_of(ki), terms)[0]
                )
                log_accept = (
                    self._log_partition_prior(new_sizes)
                    - self._log_partition_prior(sizes)
                    + parts
                    - whole
                    + integrated
                    - log_q
                )
                if math.log(rng.random()) < log_accept:
                    st.z = z.copy()
                    st.z[groups[1]] = empty[0]
                    st.offset, st.loading = offset, loading
                    terms = split_terms
                    # The new cluster starts from its parent's dynamics, as evaluated.
                    for param in (st.A, st.b, st.Q):
                        param[:, empty[0]] = param[:, ki]
                    st.extras["split_merge_accepted"] = st.extras.get("split_merge_accepted", 0) + 1
            elif modes is not None:
                first, second = np.flatnonzero(z == ki), np.flatnonzero(z == kj)
                offset, loading = st.offset.copy(), st.loading.copy()
                offset[second] = modes[column[ki], second, 0]
                loading[second] = modes[column[ki], second, 1:]
                merged_terms = self._evidence_terms(st, omega, offset, loading)
                merged = np.concatenate([first, second])
                order = rng.permutation(merged[(merged != i) & (merged != j)])
                _, log_q, _ = self._allocate(
                    i, j, order, prior_of(ki, ki), merged_terms, target=np.isin(order, second)
                )
                current = self._log_evidence([first, second], prior_of(ki, kj), terms).sum()
                whole = self._log_evidence([merged], prior_of(ki), merged_terms)[0]
                new_sizes = sizes.copy()
                new_sizes[ki], new_sizes[kj] = merged.size, 0
                integrated = (
                    self._dynamics_evidence(
                        st, [first, second], np.array([ki, kj]), prior_of(ki, kj), terms
                    ).sum()
                    - self._dynamics_evidence(
                        st, [merged], np.array([ki]), prior_of(ki), merged_terms
                    )[0]
                )
                log_accept = (
                    self._log_partition_prior(new_sizes)
                    - self._log_partition_prior(sizes)
                    + whole
                    - current
                    - integrated
                    + log_q
                )
                if math.log(rng.random()) < log_accept:
                    st.z = z.copy()
                    st.z[second] = ki
                    st.offset, st.loading = offset, loading
                    terms = merged_terms
                    st.extras["split_merge_accepted"] = st.extras.get("split_merge_accepted", 0) + 1

    def sample_offsets_loadings(self, st: ChainState, omega: np.ndarray) -> None:
        cfg = self.cfg
        kappa = 0.5 * (self.y - st.dispersion[:, None])
        hz = st.h[st.z]  # (N, T, d)
        design = np.concatenate([np.ones((self.N, self.T, 1)), hz[..., 1:]], axis=-1)
        target = kappa + omega * (np.log(st.dispersion)[:, None] - hz[..., 0])
        prior_prec = np.diag([1.0 / cfg.offset_sd**2] + [1.0 / cfg.loading_sd**2] * self.p)
        prior_mean = np.zeros((self.N, self.d))
        prior_mean[:, 0] = self.offset_center
        prec = np.einsum("nt,ntd,nte->nde", omega, design, design) + prior_prec
        rhs = np.einsum("nt,ntd->nd", target, design) + prior_mean @ prior_prec
        cov = np.linalg.inv(prec)
        draw = _batched_mvn(self.rng, np.einsum("nij,nj->ni", cov, rhs), cov)
        st.offset, st.loading = draw[:, 0], draw[:, 1:]

    def transition_loglik(self, st: ChainState) -> np.ndarray:
        """log N(h_t | b_l + A_l h_{t-1}, Q_l) summed over cluster slots: (L, T-1)."""
        occupied = np.bincount(st.z, minlength=self.K) > 0
        h, A, b, Q = st.h[occupied], st.A[:, occupied], st.b[:, occupied], st.Q[:, occupied]
        prev, cur = h[:, :-1], h[:, 1:]  # (K, T-1, d)
        pred = np.einsum("lkij,ktj->lkti", A, prev) + b[:, :, None, :]
        resid = cur[None] - pred  # (L, K, T-1, d)
        chol = np.linalg.cholesky(Q)  # (L, K, d, d)
        white = np.einsum("lkij,lktj->lkti", np.linalg.inv(chol), resid)
        logdet = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)  # (L, K)
        ll = (
            -0.5 * (white**2).sum(-1)
            - 0.5 * logdet[..., None]
            - 0.5 * self.d * math.log(2 * math.pi)
        )
        return ll.sum(axis=1)

    def sample_states(self, st: ChainState) -> None:
        """FFBS of the HMM states given the latents (state of bin 0 from the stationary beta)."""
        L, T = self.L, self.T
        log_em = np.zeros((T, L))
        log_em[1:] = self.transition_loglik(st).T
        em = np.exp(log_em - log_em.max(axis=1, keepdims=True))
        trans = st.trans
        alpha = forward_filter(st.beta, trans, em)
        # Backward sampling: the cumulative weights of s_t for every value of s_{t+1} at once,
        # then a plain-Python walk back through them (the only sequential part).
        back = alpha[:-1, None, :] * trans.T[None]  # (T-1, next state, state)
        back = np.cumsum(back, axis=-1)
        back = (back / back[..., -1:]).tolist()
        u = self.rng.random(T).tolist()
        last = np.cumsum(alpha[-1]).tolist()
        s = [0] * T
        s[-1] = min(bisect.bisect_left(last, u[-1] * last[-1]), L - 1)
        for t in range(T - 2, -1, -1):
            s[t] = min(bisect.bisect_left(back[t][s[t + 1]], u[t]), L - 1)
        st.s = np.asarray(s, dtype=np.int64)

    def sample_states_collapsed(self, st: ChainState, omega: np.ndarray) -> None:
        """Metropolis moves of the state sequence with the latent trajectories of a window
        around the move integrated out.

        Given the latents, the states are all but determined (a trajectory drawn under "still"
        dynamics barely moves, so a "moving" state cannot explain it, and the reverse), so the
        FFBS of :meth:`sample_states` alone leaves segment boundaries frozen. The proposal picks
        a segment boundary at random and shifts it by 1..``state_shift_max`` bins either way
        (rejected when a segment would vanish, so the number of segments is kept and the
        proposal is symmetric). The latents of the bins it changes, widened by
        ``state_move_margin`` bins on each side, are integrated out: given omega, (offset,
        loading), the dynamics and the latents outside the window they are Gaussian, so the
        move is accepted on the exact ratio of p(s | omega, h outside the window, ...) (the HMM
        prior of s times the window's collapsed evidence), and on acceptance the window's
        latents are drawn from their conditional under the new states: a Metropolis-within-Gibbs
        step on (s, window latents), as exact as a move that integrates the whole trajectory
        out (van Dyk & Park 2008), at a cost that does not grow with T. Segment births and deaths
        (:meth:`_segment_proposal`) change the number of segments, and block moves redraw the
        states of ``state_block_size`` bins around a boundary jointly
        (:func:`_block_selection_ratio`), the same way. :meth:`sample_latents` then draws every
        trajectory given the states.
        """
        cfg = self.cfg
        no_moves = cfg.state_moves + cfg.state_gibbs_bins + cfg.segment_moves == 0
        if (no_moves and cfg.state_block_moves == 0) or self.T < 3:
            return
        rng, T, margin = self.rng, self.T, self.cfg.state_move_margin
        occupied = np.flatnonzero(np.bincount(st.z, minlength=self.K) > 0)
        member = (st.z[None, :] == occupied[:, None]).astype(float)
        # The pseudo-observations' information does not depend on the states: once per sweep.
        info_mat, info_vec = self._pseudo_information(st, omega, member, st.offset, st.loading)
        tables = _state_tables(st.A[:, occupied], st.b[:, occupied], st.Q[:, occupied])
        log_trans = np.log(st.trans)
        s, h = st.s.copy(), st.h[occupied]
        accepted = 0

        log_beta = np.log(st.beta)

        def window_evidence(candidates: np.ndarray, first: int, last: int) -> tuple:
            """Each candidate sequence's collapsed evidence of the window first..last (latents
            integrated out, inner transitions' normalisers included), and the stacked factor."""
            chol, white, log_prior = _window_posterior(
                tables, candidates, h, info_mat, info_vec, first, last
            )
            per_candidate = _gaussian_log_normaliser(chol, white).reshape(len(candidates), -1)
            return per_candidate.sum(1) + log_prior, (chol, white, len(candidates))

        def redraw_window(factor: tuple, pick: int, first: int, last: int) -> None:
            """The window's latents drawn from their conditional under candidate ``pick``."""
            chol, white, count = factor
            n = white.size // count
            draw = _banded_draw(
                chol[:, pick * n : (pick + 1) * n], white[pick * n : (pick + 1) * n], rng
            )
            h[:, first : last + 1] = draw.reshape(h.shape[0], last + 1 - first, self.d)

        def attempt(proposal: np.ndarray, lo: int, hi: int, log_q_ratio: float = 0.0) -> bool:
            """Metropolis-Hastings on a proposal that changes bins lo..hi-1 (0 <= lo < hi <= T),
            the window's latents integrated out; on acceptance they are redrawn."""
            nonlocal s
            first, last = max(0, lo - 1 - margin), min(T - 1, hi - 1 + margin)
            pair = np.stack([s, proposal])
            evidence, factor = window_evidence(pair, first, last)
            # The HMM factors the change touches: the transitions into bins max(lo, 1)..min(hi,
            # T - 1) and, when bin 0 changes, the initial state's (h_0's prior is state-free).
            a, b = max(lo, 1), min(hi, T - 1)
            hmm = log_trans[pair[:, a - 1 : b], pair[:, a : b + 1]].sum(1)
            if lo == 0:
                hmm += log_beta[pair[:, 0]]
            log_ratio = evidence[1] + hmm[1] - evidence[0] - hmm[0] + log_q_ratio
            if math.log(rng.random()) >= log_ratio:
                return False
            s = proposal
            redraw_window(factor, 1, first, last)
            return True

        # Boundary shifts: state_moves, or two per segment boundary when there are more.
        for _ in range(max(self.cfg.state_moves, 2 * np.count_nonzero(np.diff(s)))):
            change = np.flatnonzero(np.diff(s)) + 1  # first bin of each new segment
            if change.size == 0:
                break
            j = int(rng.integers(change.size))
            shift = int(rng.integers(1, self.cfg.state_shift_max + 1)) * int(rng.choice([-1, 1]))
            before = change[j - 1] if j > 0 else 0
            after = change[j + 1] if j + 1 < change.size else T
            moved = change[j] + shift
            if not before < moved < after:
                continue
            proposal = s.copy()
            if shift > 0:
                proposal[change[j] : moved] = s[change[j] - 1]
            else:
                proposal[moved : change[j]] = s[change[j]]
            accepted += attempt(proposal, min(change[j], moved), max(change[j], moved))
        # Births and deaths of short segments, which the shifts (segment count fixed) cannot do.
        for _ in range(self.cfg.segment_moves if self.L > 1 else 0):
            move = self._segment_proposal(s, rng)
            if move is not None:
                accepted += attempt(*move)
        # Block moves: all 2^w fillings of w bins around a boundary with the two states beside
        # the block, drawn from their collapsed conditional (see _block_selection_ratio).
        w = self.cfg.state_block_size
        fillings = (np.arange(2**w)[:, None] >> np.arange(w)) & 1  # (2^w, w) of 0 (left), 1
        for _ in range(self.cfg.state_block_moves if self.L > 1 and w > 1 else 0):
            change = np.flatnonzero(np.diff(s)) + 1
            if change.size == 0:
                break
            start = int(change[rng.integers(change.size)]) - int(rng.integers(1, w))
            end = start + w
            if start < 1 or end > T - 1 or s[start - 1] == s[end]:
                continue
            left, right = s[start - 1], s[end]
            block = s[start:end]
            if np.any((block != left) & (block != right)):
                continue  # a third state inside: not among the fillings
            candidates = np.repeat(s[None], fillings.shape[0], axis=0)
            candidates[:, start:end] = np.where(fillings == 1, right, left)
            first, last = max(0, start - 1 - margin), min(T - 1, end - 1 + margin)
            log_p, factor = window_evidence(candidates, first, last)
            log_p += log_trans[candidates[:, start - 1 : end], candidates[:, start : end + 1]].sum(
                1
            )
            weights = np.exp(log_p - log_p.max())
            pick = int(rng.choice(len(candidates), p=weights / weights.sum()))
            proposal = candidates[pick]
            if np.array_equal(proposal, s):
                continue
            ratio = _block_selection_ratio(s, proposal, start, end)
            if ratio == 0.0 or rng.random() >= ratio:
                continue
            s = proposal
            accepted += 1
            redraw_window(factor, pick, first, last)
        # Single-bin Gibbs updates, the window's latents integrated out: they open and close
        # short segments, which the boundary shifts (segment count fixed) cannot, and which FFBS
        # given the latents leaves in place (a spurious one-bin segment persisted for hundreds
        # of sweeps in one chain and never appeared in the other). Bins drawn independently of
        # the states; the window's latents are redrawn when the state changes (when it does
        # not, they already follow their conditional).
        states = np.arange(self.L)
        for t in rng.choice(T, size=min(T, self.cfg.state_gibbs_bins), replace=False):
            first, last = max(0, t - 1 - margin), min(T - 1, t + margin)
            candidates = np.repeat(s[None], self.L, axis=0)
            candidates[:, t] = states
            log_p, factor = window_evidence(candidates, first, last)
            log_p += log_trans[s[t - 1], states] if t > 0 else log_beta
            log_p += log_trans[states, s[t + 1]] if t < T - 1 else 0.0
            w = np.exp(log_p - log_p.max())
            new = int(rng.choice(self.L, p=w / w.sum()))
            if new != s[t]:
                s = candidates[new]
                redraw_window(factor, new, first, last)
        st.s = s
        st.h[occupied] = h
        st.extras["state_moves_accepted"] = st.extras.get("state_moves_accepted", 0) + accepted

    def _segment_proposal(self, s: np.ndarray, rng: np.random.Generator) -> tuple | None:
        """A reversible pair of moves on the state sequence: the birth of a segment of 1 to
        ``segment_max`` bins of another state inside a run of one state (..A A A.. ->
        ..A B A.., or at either end of the sequence: A A.. -> B A..), and the death of such a
        segment (a segment of at most ``segment_max`` bins, either between two runs of one state
        or first or last in the sequence, takes its neighbours' state), each chosen with
        probability 1/2. Neither changes which states are used: a birth's state is one of the
        used states, and a death may not remove a state's last bins. (With births into unused
        states, a 2-bin segment of a new state, whose dynamics then fit those bins alone, held
        on in one chain of two through 400 sweeps at real size: R-hat inf on the number of
        states. Which states are used is left to FFBS and, in burn-in, the state merges.)

        A birth picks its length (1..``segment_max``) and its new state uniformly, and its first
        bin uniformly among the T bins, or, with probability ``segment_end_births``, puts the
        block at one end of the sequence (either end with probability 1/2); there is no move
        when the block does not lie inside a run that has a bin beside the block on every side
        the sequence goes on. A death picks uniformly among the segments it can remove. The
        ends need their own moves: with h_0's prior the only other constraint, the first bins'
        states are the least certain (at real size 7% of the draws had a short first segment),
        and a uniform birth lands there once in T / 2 proposals, so FFBS alone made such
        segments, which then stayed for runs of sweeps and left the state occupancy the slowest
        quantity to reach an ESS of 100. Returns (proposal, lo, hi, log q(reverse) - log
        q(forward)) with bins lo..hi-1 changed, or None."""
        T, m, end_share = self.T, self.cfg.segment_max, self.cfg.segment_end_births
        used = np.unique(s)
        if T < 2 or used.size < 2:
            return None

        def log_birth(lo: int, hi: int) -> float:  # log q of the birth of block lo..hi-1
            at_end = lo == 0 or hi == T
            share = (1.0 - end_share) / T + (0.5 * end_share if at_end else 0.0)
            return math.log(share) - math.log(m) - math.log(used.size - 1)

        if rng.random() < 0.5:
            length = int(rng.integers(1, m + 1))
            if rng.random() < end_share:
                t = 0 if rng.random() < 0.5 else T - length
            else:
                t = int(rng.integers(T))
            end = t + length
            if end > T or (t == 0 and end == T) or np.any(s[max(t - 1, 0) : end + 1] != s[t]):
                return None
            proposal = s.copy()
            proposal[t:end] = rng.choice(used[used != s[t]])
            removable = _removable_segments(proposal, m)
            return proposal, t, end, -math.log(len(removable)) - log_birth(t, end)
        removable = _removable_segments(s, m)
        if not removable:
            return None
        lo, hi = removable[int(rng.integers(len(removable)))]
        proposal = s.copy()
        proposal[lo:hi] = s[lo - 1] if lo > 0 else s[hi]
        return proposal, lo, hi, log_birth(lo, hi) + math.log(len(removable))

    def _log_sequence_prior(self, states: np.ndarray, beta: np.ndarray) -> float:
        """log p(states | beta) of the sticky weak-limit HMM with the transition rows integrated
        out (Dirichlet-multinomial per row, prior alpha beta + kappa e_j), the first state from
        beta."""
        cfg, L = self.cfg, self.L
        counts = np.zeros((L, L))
        np.add.at(counts, (states[:-1], states[1:]), 1.0)
        prior = cfg.hmm_alpha * beta[None, :] + cfg.hmm_kappa * np.eye(L)
        rows = gammaln(prior.sum(1)) - gammaln(prior.sum(1) + counts.sum(1))
        cells = gammaln(prior + counts) - gammaln(prior)
        return float(math.log(beta[states[0]]) + rows.sum() + cells.sum())

    def merge_states(self, st: ChainState) -> None:
        """Burn-in move: propose merging each ordered pair of used states, in random order, into
        one (every bin of the second takes the first's label), accepted by Metropolis with the
        latents' evidence with every state's dynamics integrated out (MNIW; the transition
        statistics of two states add) and the state sequence's prior with the transition rows
        integrated out.

        Single-bin updates and boundary shifts cannot undo a state that split in two early on:
        each half has dynamics fitted to its own bins, so every bin prefers its half (one chain
        of eight in the default run kept 3 states for 2 planted ones). Evaluated with the
        dynamics integrated out, the split costs the second state's dynamics' fit. There is no
        reverse split move, so like the merge-split on the labels it runs during burn-in only.
        """
        occupied = np.bincount(st.z, minlength=self.K) > 0
        stats = list(self._transition_stats(st.h[occupied], st.s))
        used = np.unique(st.s)
        pairs = [(a, b) for a in used for b in used if a != b]
        for index in self.rng.permutation(len(pairs)):
            first, second = pairs[index]
            if not ((st.s == first).any() and (st.s == second).any()):
                continue  # one of them was merged away already
            both = [first, second]
            current = self._log_marginal_per_state(*(S[both] for S in stats)).sum()
            merged = self._log_marginal_per_state(*(S[[first]] + S[[second]] for S in stats))
            states = np.where(st.s == second, first, st.s)
            log_accept = (
                merged.sum()
                - current
                + self._log_sequence_prior(states, st.beta)
                - self._log_sequence_prior(st.s, st.beta)
            )
            if math.log(self.rng.random()) < log_accept:
                st.s = states
                for S in stats:  # the statistics of two states add
                    S[first] += S[second]
                    S[second] = 0.0
                st.extras["state_merges_accepted"] = st.extras.get("state_merges_accepted", 0) + 1

    def sample_transitions(self, st: ChainState) -> None:
        """Sticky HDP-HMM weak-limit updates of beta and the transition rows (Fox et al.)."""
        cfg, L, rng = self.cfg, self.L, self.rng
        counts = np.zeros((L, L))
        np.add.at(counts, (st.s[:-1], st.s[1:]), 1.0)
        alpha, kappa, gamma = cfg.hmm_alpha, cfg.hmm_kappa, cfg.hmm_gamma
        prior = alpha * st.beta[None, :] + kappa * np.eye(L)
        # Tables (Chinese restaurant table counts) per (j, k).
        tables = np.zeros((L, L))
        max_count = int(counts.max()) if counts.size else 0
        if max_count:
            n = np.arange(max_count)
            probs = prior[..., None] / (n + prior[..., None])  # (L, L, max_count)
            draws = rng.random(probs.shape) < probs
            draws &= n < counts[..., None]
            tables = draws.sum(-1).astype(float)
        rho = kappa / (alpha + kappa)
        diag = np.diag(tables).copy()
        override = rng.binomial(diag.astype(int), rho / (rho + st.beta * (1 - rho)))
        tables[np.diag_indices(L)] = diag - override
        st.beta = rng.dirichlet(gamma / L + tables.sum(axis=0))
        st.beta = np.maximum(st.beta, 1e-12)
        st.beta /= st.beta.sum()
        post = alpha * st.beta[None, :] + kappa * np.eye(L) + counts
        trans = np.array([rng.dirichlet(row) for row in post])
        st.trans = np.maximum(trans, 1e-300)

    def _transition_stats(self, h: np.ndarray, states: np.ndarray) -> tuple:
        """Sums over each state's transitions t-1 -> t of u u', w u' and w w', with
        u = (1, h_{t-1}) and w = (1, h_t), for trajectories h (G, T, d): (L, G, d+1, d+1)
        each, and the transition counts n (L, 1)."""
        L = self.L
        G, T, d = h.shape
        e = d + 1
        onehot = np.zeros((L, T - 1))
        onehot[states[1:], np.arange(T - 1)] = 1.0
        w = np.concatenate([np.ones((G, T, 1)), h], axis=-1)  # (G, T, d+1)
        u, v = w[:, :-1], w[:, 1:]
        # One product with the one-hot sums every state's outer products.
        stats = np.concatenate(
            [(u[..., :, None] * u[..., None, :]).reshape(G, T - 1, -1),
             (v[..., :, None] * u[..., None, :]).reshape(G, T - 1, -1),
             (v[..., :, None] * v[..., None, :]).reshape(G, T - 1, -1)], axis=-1,
        )  # fmt: skip
        stats = np.swapaxes(onehot @ stats, 0, 1).reshape(L, G, 3, e, e)
        return stats[:, :, 0], stats[:, :, 1], stats[:, :, 2], onehot.sum(axis=1)[:, None]

    def _mniw_posterior(self, Suu, Swu, Sww, n) -> tuple:
        """MNIW posterior of each state's dynamics from the transition statistics of
        :meth:`_transition_stats`: precision V_n^-1 and covariance V_n (L, G, d+1, d+1), mean
        M_n (L, G, d, d+1), scale Psi_n (L, G, d, d) and transition counts n (L, 1)."""
        d = self.d
        Svu, Svv = Swu[..., 1:, :], Sww[..., 1:, 1:]
        prec = Suu + self.V0_inv
        cov = np.linalg.inv(prec)
        M0V = self.M0 @ self.V0_inv
        Mn = (Svu + M0V) @ cov
        Psi = self.Psi0 + Svv + M0V @ self.M0.T - Mn @ prec @ np.swapaxes(Mn, -1, -2)
        Psi = 0.5 * (Psi + np.swapaxes(Psi, -1, -2)) + 1e-9 * np.eye(d)
        return prec, cov, Mn, Psi, n

    def sample_dynamics(self, st: ChainState) -> None:
        """MNIW updates of (b, A, Q) per state and occupied cluster slot; empty slots keep the
        prior-mean dynamics, ready for a neuron that opens a cluster."""
        L, d = self.L, self.d
        occupied = np.bincount(st.z, minlength=self.K) > 0
        G = int(occupied.sum())
        _, cov, Mn, Psi, n = self._mniw_posterior(*self._transition_stats(st.h[occupied], st.s))
        Q = _batched_inverse_wishart(self.rng, self.nu0 + np.broadcast_to(n, (L, G)), Psi)
        chol_q = np.linalg.cholesky(Q)
        chol_v = np.linalg.cholesky(cov)
        W = Mn + chol_q @ self.rng.standard_normal(Mn.shape) @ np.swapaxes(chol_v, -1, -2)
        st.A[:, occupied], st.b[:, occupied], st.Q[:, occupied] = W[..., 1:], W[..., 0], Q
        st.A[:, ~occupied], st.b[:, ~occupied] = np.eye(d), 0.0
        st.Q[:, ~occupied] = self.cfg.noise_prior_scale * np.eye(d)

    def dynamics_log_marginal(self, h: np.ndarray, states: np.ndarray) -> np.ndarray:
        """log p(h_1..h_T | h_0, states) of each trajectory (G, T, d) with every state's (b, A, Q)
        integrated out under the MNIW prior (matrix-t evidence of a multivariate regression):
        sum over states of -n d/2 log pi + d/2 log(|V0^-1| / |V_n^-1|) + nu0/2 log|Psi0|
        - nu_n/2 log|Psi_n| + log Gamma_d(nu_n/2) - log Gamma_d(nu0/2), (G,)."""
        return self._log_marginal_from_stats(*self._transition_stats(h, states))

    def _log_marginal_from_stats(self, Suu, Swu, Sww, n) -> np.ndarray:
        """:meth:`dynamics_log_marginal` from the transition statistics, (G,)."""
        return self._log_marginal_per_state(Suu, Swu, Sww, n).sum(axis=0)

    def _log_marginal_per_state(self, Suu, Swu, Sww, n) -> np.ndarray:
        """Each state's term of :meth:`dynamics_log_marginal`, (L, G) (0 for unused states)."""
        from scipy.special import multigammaln

        d = self.d
        prec, _, _, Psi, n = self._mniw_posterior(Suu, Swu, Sww, n)
        nu_n = self.nu0 + n  # (L, 1)
        per_state = (
            -0.5 * n * d * math.log(math.pi)
            + 0.5 * d * (np.linalg.slogdet(self.V0_inv)[1] - np.linalg.slogdet(prec)[1])
            + 0.5 * self.nu0 * np.linalg.slogdet(self.Psi0)[1]
            - 0.5 * nu_n * np.linalg.slogdet(Psi)[1]
            + multigammaln(0.5 * nu_n, d)
            - multigammaln(0.5 * self.nu0, d)
        )
        return per_state

    def dynamics_log_density(self, h, states, A, b, Q) -> np.ndarray:
        """log p(h_1..h_T | h_0, states, dynamics) of each trajectory (G, T, d) under its own
        dynamics A, Q (L, G, d, d), b (L, G, d), (G,)."""
        T, d = h.shape[1], self.d
        s = states[1:]
        pred = np.einsum("tgij,gtj->gti", A[s], h[:, :-1]) + np.swapaxes(b[s], 0, 1)
        resid = h[:, 1:] - pred
        quad = np.einsum("gti,tgij,gtj->g", resid, np.linalg.inv(Q)[s], resid)
        logdet = np.linalg.slogdet(Q)[1][s].sum(axis=0)  # (G,)
        return -0.5 * (quad + logdet + (T - 1) * d * math.log(2 * math.pi))

    def dispersion_loglik(self, mean: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Each neuron's NB log-likelihood of its counts as a function of its dispersion r (N,)
        given the means (N, T), up to terms free of r: sum_t log Gamma(y + r) - T log Gamma(r)
        - log r sum_t y - sum_t (y + r) log(1 + mean / r). The log Gamma sum runs over each
        neuron's distinct counts with their multiplicities (a few dozen values, not T bins)."""
        neuron, value, weight = self._count_histogram
        ll = np.bincount(neuron, weight * gammaln(value + r[neuron]), minlength=self.N)
        ll -= self.T * gammaln(r) + self._count_total * np.log(r)
        return ll - ((self.y + r[:, None]) * np.log1p(mean / r[:, None])).sum(axis=1)

    def sample_dispersion(self, st: ChainState) -> None:
        """Random-walk Metropolis on each neuron's log r, ``dispersion_steps`` steps per sweep.

        The log rates are fixed within the step, so each further step costs one NB
        log-likelihood of the counts. During burn-in each neuron's step size adapts towards an
        acceptance rate of 0.44 (the optimum of a one-dimensional random walk; Roberts &
        Rosenthal 2001); after burn-in it stays fixed, so the kept chain is a plain Metropolis
        chain.
        """
        cfg = self.cfg
        mean = np.exp(np.minimum(self.log_mean(st), 700.0))
        step = st.extras.setdefault("dispersion_step", np.full(self.N, 0.2))

        def log_post(rr):
            ll = self.dispersion_loglik(mean, rr)
            # Gamma prior on r plus the Jacobian of the log transform.
            return ll + cfg.dispersion_shape * np.log(rr) - cfg.dispersion_rate * rr

        r, current = st.dispersion, None
        for _ in range(cfg.dispersion_steps):
            current = log_post(r) if current is None else current
            proposal = r * np.exp(step * self.rng.standard_normal(self.N))
            candidate = log_post(proposal)
            log_ratio = np.minimum(candidate - current, 0.0)
            accept = np.log(self.rng.random(self.N)) < log_ratio
            r = np.where(accept, proposal, r)
            current = np.where(accept, candidate, current)
            if self.burn_in:
                step *= np.exp(0.1 * (np.exp(log_ratio) - 0.44))
        st.dispersion = r

    # -- sweep ---------------------------------------------------------------------------------

    def affine_generators(self) -> list[tuple[str, int, int]]:
        """One-parameter subgroups of the affine maps h -> M h + v of a cluster's latents that the
        likelihood cannot see (M leaves the mean coordinate mu out of x): ("shift", j, -1) adds
        a to h_j; ("scale", j, -1) multiplies x_j by exp(a); ("shear", j, m) adds a x_m to h_j
        (j = 0: the mean trajectory takes a multiple of a latent coordinate)."""
        d = self.d
        shifts = [("shift", j, -1) for j in range(d)]
        scales = [("scale", j, -1) for j in range(1, d)]
        shears = [("shear", j, m) for j in range(d) for m in range(1, d) if j != m]
        return shifts + scales + shears

    def _affine_element(self, generator: tuple, a: np.ndarray) -> tuple:
        """(M (G, d, d), v (G, d)) of the generator's subgroup at parameters a (G,)."""
        kind, j, m = generator
        G, d = a.size, self.d
        M = np.broadcast_to(np.eye(d), (G, d, d)).copy()
        v = np.zeros((G, d))
        if kind == "shift":
            v[:, j] = a
        elif kind == "scale":
            M[:, j, j] = np.exp(a)
        else:
            M[:, j, m] = a
        return M, v

    def affine_log_target(self, st, slots, stats, M, v) -> np.ndarray:
        """log posterior (up to a constant) after mapping each slot's latents h -> M h + v and
        its neurons' (offset, loading) so that every log rate is unchanged, with the dynamics
        integrated out (MNIW evidence of the mapped trajectory), plus the log Jacobian
        (T - n_k) log|det M| of the map on (h, loadings): (G,) for slots (G,), their transition
        statistics (:meth:`_transition_stats`) and M (G, d, d), v (G, d)."""
        cfg, T = self.cfg, self.T
        h0 = np.einsum("gij,gj->gi", M, st.h[slots, 0]) + v
        member = self._slot_rows(st, slots)
        offset, loading = self._affine_parameters(st.offset, st.loading, M[member], v[member])
        neuron = (offset - self.offset_center) ** 2 / cfg.offset_sd**2
        neuron += (loading**2).sum(1) / cfg.loading_sd**2
        n_members = np.bincount(member, minlength=len(slots))
        return (
            self._log_marginal_from_stats(*_mapped_stats(stats, M, v))
            - 0.5 * (h0**2).sum(1)
            - 0.5 * np.bincount(member, neuron, minlength=len(slots))
            + (T - n_members) * np.linalg.slogdet(M)[1]
        )

    def _slot_rows(self, st: ChainState, slots: np.ndarray) -> np.ndarray:
        """Each neuron's row in ``slots`` (its cluster's position there), (N,)."""
        position = np.full(self.K, -1)
        position[slots] = np.arange(len(slots))
        return position[st.z]

    @staticmethod
    def _affine_parameters(offset, loading, M, v) -> tuple:
        """(offset, loading) whose log rates under M h + v equal the given ones under h:
        g = (1, loading) -> g M^-1, offset -> offset - g M^-1 v (per neuron: M (N, d, d))."""
        g = np.concatenate([np.ones((len(offset), 1)), loading], axis=1)
        g = np.linalg.solve(np.swapaxes(M, -1, -2), g[..., None])[..., 0]  # M^-T g = (g' M^-1)'
        return offset - (g * v).sum(1), g[:, 1:]

    def sample_redundant(self, st: ChainState) -> None:
        """Moves along the directions the likelihood cannot see, for every occupied cluster at
        once: affine maps of its latents h -> M h + v (shifts, scales and shears, see
        :meth:`affine_generators`) with its neurons' offsets and loadings mapped so that the log
        rates are unchanged. Each is a generalised Gibbs step along a one-parameter group (Liu &
        Sabatti 2000): ``redundant_steps`` random-walk Metropolis steps on the group parameter,
        from 0, whose target is the posterior at the mapped point times the Jacobian
        (:meth:`affine_log_target`); step sizes adapt during burn-in. The dynamics are
        integrated out of the target (partially collapsed, van Dyk & Park 2008) and drawn
        afresh given the mapped latents afterwards, so the move is not held back by dynamics
        fitted to the current latents, and the target costs O(L d^3) per evaluation (the
        transition statistics map as B S B', B = [[1, 0], [v, M]]), not O(T).
        """
        cfg, rng = self.cfg, self.rng
        if cfg.redundant_steps <= 0:
            return
        slots = np.flatnonzero(np.bincount(st.z, minlength=self.K) > 0)
        G = len(slots)
        stats = self._transition_stats(st.h[slots], st.s)
        generators = self.affine_generators()
        steps = st.extras.setdefault("affine_step", np.full(len(generators), 0.1))
        # The moves compose: each is evaluated as the map so far followed by its own, and the
        # composed map is applied to the O(T) latents once, at the end.
        so_far = (np.broadcast_to(np.eye(self.d), (G, self.d, self.d)), np.zeros((G, self.d)))

        def target(generator, a):
            return self.affine_log_target(
                st, slots, stats, *_compose(self._affine_element(generator, a), so_far)
            )

        for index, generator in enumerate(generators):
            a = np.zeros(G)
            current = target(generator, a)
            for _ in range(cfg.redundant_steps):
                proposal = a + steps[index] * rng.standard_normal(G)
                candidate = target(generator, proposal)
                log_ratio = np.minimum(candidate - current, 0.0)
                accept = np.log(rng.random(G)) < log_ratio
                a = np.where(accept, proposal, a)
                current = np.where(accept, candidate, current)
                if self.burn_in:
                    steps[index] *= np.exp(0.05 * (np.exp(log_ratio).mean() - 0.44))
            so_far = _compose(self._affine_element(generator, a), so_far)
        self._apply_affine(st, slots, *so_far)
        self.sample_dynamics(st)

    def _apply_affine(self, st: ChainState, slots, M, v) -> None:
        """Map the latents of the slots (G,) by h -> M h + v and their neurons' offsets and
        loadings (and the label step's warm-start modes under those slots) so that every log
        rate is unchanged."""
        st.h[slots] = np.einsum("gij,gtj->gti", M, st.h[slots]) + v[:, None]
        member = self._slot_rows(st, slots)
        st.offset, st.loading = self._affine_parameters(st.offset, st.loading, M[member], v[member])
        if "laplace_start" in st.extras:  # the label step's warm start follows along
            modes, column, _ = st.extras["laplace_start"]
            for g, slot in enumerate(slots):
                rows = modes[column[slot]]
                offset, loading = self._affine_parameters(
                    rows[:, 0], rows[:, 1:], np.broadcast_to(M[g], (len(rows),) + M[g].shape),
                    np.broadcast_to(v[g], (len(rows), self.d)),
                )  # fmt: skip
                rows[:, 0], rows[:, 1:] = offset, loading

    def sweep(self, st: ChainState) -> None:
        self.sample_labels(st)
        # One PG draw serves both Gaussian blocks: given omega, (latents) then (offsets,
        # loadings) is a systematic Gibbs scan of the augmented posterior.
        omega = self.sample_polya_gamma(st)
        if self.split_merge_active:
            self.split_merge(st, omega)
        self.sample_states_collapsed(st, omega)
        self.sample_latents(st, omega)
        self.sample_offsets_loadings(st, omega)
        if self.redundant_active:
            self.sample_redundant(st)
        self.sample_states(st)
        if self.split_merge_active:
            self.merge_states(st)
        self.sample_transitions(st)
        self.sample_dynamics(st)
        self.sample_dispersion(st)
        for _ in range(self.cfg.continuous_scans - 1):
            self.scan_continuous(st)

    def scan_continuous(self, st: ChainState) -> None:
        """One systematic scan of the continuous blocks, labels and states fixed."""
        omega = self.sample_polya_gamma(st)
        self.sample_latents(st, omega)
        self.sample_offsets_loadings(st, omega)
        self.sample_dynamics(st)
        self.sample_dispersion(st)


def _compose(outer: tuple, inner: tuple) -> tuple:
    """The affine map h -> M2 (M1 h + v1) + v2 of outer (M2, v2) after inner (M1, v1),
    batched: M (G, d, d), v (G, d)."""
    (M2, v2), (M1, v1) = outer, inner
    return M2 @ M1, np.einsum("gij,gj->gi", M2, v1) + v2


def _mapped_stats(stats: tuple, M: np.ndarray, v: np.ndarray) -> tuple:
    """Transition statistics (:meth:`BiclusterSampler._transition_stats`) of latents mapped by
    h -> M h + v, (G, d, d) and (G, d): each sum of outer products of (1, h) maps as B S B' with
    B = [[1, 0], [v, M]]."""
    B = np.zeros((len(M), M.shape[-1] + 1, M.shape[-1] + 1))
    B[:, 0, 0], B[:, 1:, 0], B[:, 1:, 1:] = 1.0, v, M
    Bt = np.swapaxes(B, -1, -2)
    Suu, Swu, Sww, n = stats
    return B @ Suu @ Bt, B @ Swu @ Bt, B @ Sww @ Bt, n


def _trajectory_prior(A: np.ndarray, b: np.ndarray, Q_inv: np.ndarray) -> tuple:
    """Gaussian prior of trajectories h_0 ~ N(0, I), h_t = b_t + A_t h_{t-1} + N(0, Q_t), for G
    groups (transition arrays (G, T-1, ...)): block-tridiagonal precision as diagonal blocks
    (G, T, d, d) and sub-diagonal blocks (G, T-1, d, d) (block (t, t-1)), linear term (G, T, d)."""
    G, d = A.shape[0], A.shape[-1]
    T = A.shape[1] + 1
    AtQinv = np.swapaxes(A, -1, -2) @ Q_inv
    diag = np.zeros((G, T, d, d))
    diag[:, 0] += np.eye(d)
    diag[:, 1:] += Q_inv
    diag[:, :-1] += AtQinv @ A
    lin = np.zeros((G, T, d))
    lin[:, 1:] += (Q_inv @ b[..., None])[..., 0]
    lin[:, :-1] -= (AtQinv @ b[..., None])[..., 0]
    return diag, -Q_inv @ A, lin


@functools.lru_cache(maxsize=256)
def _band_layout(G: int, T: int, d: int) -> tuple:
    """Where the lower triangles of the diagonal blocks and the sub-diagonal blocks of G stacked
    block-tridiagonal (T blocks of d x d) matrices go in lower banded storage."""
    base = (np.arange(G)[:, None] * T + np.arange(T)[None, :]) * d  # (G, T)
    rows, cols = np.tril_indices(d)
    diag_at = (np.broadcast_to(rows - cols, (G, T, rows.size)), base[..., None] + cols)
    ii, jj = (a.ravel() for a in np.meshgrid(np.arange(d), np.arange(d), indexing="ij"))
    col_off = base[:, :-1, None] + jj  # column in block t-1
    row_off = base[:, 1:, None] + ii  # row in block t
    return diag_at, (rows, cols), (row_off - col_off, col_off), (ii, jj)


def _banded_cholesky(diag: np.ndarray, off: np.ndarray, lin: np.ndarray) -> tuple:
    """Lower banded Cholesky factor L of G stacked block-tridiagonal precisions (uncoupled
    groups) and the whitened linear term L^-1 lin: (chol (2d, G*T*d), white (G*T*d,))."""
    from scipy.linalg import lapack

    G, T, d = lin.shape
    n, band = G * T * d, 2 * d - 1
    diag_at, (rows, cols), off_at, (ii, jj) = _band_layout(G, T, d)
    ab = np.zeros((band + 1, n))
    ab[diag_at] = diag[..., rows, cols]
    ab[off_at] = off[..., ii, jj]
    # LAPACK directly (pbtrf, tbtrs): the scipy wrappers' checks cost more than these small
    # factorisations in the state moves.
    chol, info = lapack.dpbtrf(ab, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"banded Cholesky failed (info {info})")
    white, info = lapack.dtbtrs(chol, lin.reshape(n, 1), uplo="L")
    return chol, white[:, 0]


def _banded_back_substitute(chol: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """x with L' x = rhs for the banded factor L of :func:`_banded_cholesky`: the mean of the
    Gaussian with precision L L' and linear term L rhs (one banded back substitution with the
    transposed factor, LAPACK tbtrs)."""
    from scipy.linalg import lapack

    x, info = lapack.dtbtrs(chol, rhs[:, None], uplo="L", trans="T")
    if info != 0:
        raise np.linalg.LinAlgError(f"banded triangular solve failed (info {info})")
    return x[:, 0]


def _banded_draw(chol: np.ndarray, white: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A draw of the Gaussian with precision L L' and linear term L white (the output of
    :func:`_banded_cholesky`): mean + L'^-1 e = L'^-1 (white + e)."""
    return _banded_back_substitute(chol, white + rng.standard_normal(white.size))


def _state_tables(A: np.ndarray, b: np.ndarray, Q: np.ndarray) -> dict[str, np.ndarray]:
    """Per-state pieces of a transition's Gaussian factor N(h_t | b + A h_{t-1}, Q) for the
    slots given ((L, G, ...) arrays): Q^-1, Q^-1 A, A' Q^-1 A, A' Q^-1, Q^-1 b, A' Q^-1 b and the
    normaliser 0.5 (b' Q^-1 b + log|Q|) summed over the slots, (L,)."""
    Q_inv = np.linalg.inv(Q)
    At_Qinv = np.swapaxes(A, -1, -2) @ Q_inv
    Qinv_b = (Q_inv @ b[..., None])[..., 0]
    return {
        "A": A,
        "b": b,
        "Q_inv": Q_inv,
        "Q_inv_A": Q_inv @ A,
        "At_Qinv_A": At_Qinv @ A,
        "At_Qinv": At_Qinv,
        "Q_inv_b": Qinv_b,
        "At_Qinv_b": (At_Qinv @ b[..., None])[..., 0],
        "norm": 0.5 * ((b * Qinv_b).sum(-1) + np.linalg.slogdet(Q)[1]).sum(axis=1),
    }


def _window_posterior(
    tables: dict, states: np.ndarray, h: np.ndarray, info_mat, info_vec, first: int, last: int
) -> tuple:
    """The Gaussian of the latents of bins first..last of every slot given the latents outside
    (h, (G, T, d)), the pseudo-observations' information (G, T, d, d), (G, T, d) and each of S
    state sequences (S, T): banded Cholesky factor and whitened linear term of the S x G stacked
    windows (as :func:`_banded_cholesky`), and per sequence the log normalisers of the window's
    inner transitions, (S,). Factors of the two boundary transitions that do not depend on the
    window's latents are left out: they are the same for sequences that agree at ``first`` and
    ``last + 1``."""
    S, (G, T, d) = len(states), h.shape
    n = last + 1 - first
    win = states[:, first : last + 1]
    inner = win[:, 1:]  # state of each transition inside the window, (S, n-1)

    def per_slot(name, sel):  # tables[name][sel] with the slot axis moved before the time axis
        return np.moveaxis(tables[name][sel], -3 if tables[name].ndim == 4 else -2, 1)

    diag = np.broadcast_to(info_mat[:, first : last + 1], (S, G, n, d, d)).copy()
    lin = np.broadcast_to(info_vec[:, first : last + 1], (S, G, n, d)).copy()
    diag[:, :, 1:] += per_slot("Q_inv", inner)
    diag[:, :, :-1] += per_slot("At_Qinv_A", inner)
    lin[:, :, 1:] += per_slot("Q_inv_b", inner)
    lin[:, :, :-1] -= per_slot("At_Qinv_b", inner)
    off = -per_slot("Q_inv_A", inner)
    if first == 0:
        diag[:, :, 0] += np.eye(d)  # h_0 ~ N(0, I)
    else:  # transition into the window from h_{first-1}
        left = states[:, first]
        pred = tables["A"][left] @ h[:, first - 1, :, None] + tables["b"][left][..., None]
        diag[:, :, 0] += tables["Q_inv"][left]
        lin[:, :, 0] += (tables["Q_inv"][left] @ pred)[..., 0]
    if last < T - 1:  # transition out of the window to h_{last+1}
        right = states[:, last + 1]
        diag[:, :, -1] += tables["At_Qinv_A"][right]
        lin[:, :, -1] += (tables["At_Qinv"][right] @ h[:, last + 1, :, None])[..., 0]
        lin[:, :, -1] -= tables["At_Qinv_b"][right]
    chol, white = _banded_cholesky(
        diag.reshape(S * G, n, d, d), off.reshape(S * G, n - 1, d, d), lin.reshape(S * G, n, d)
    )
    return chol, white, -tables["norm"][inner].sum(axis=1)


def _gaussian_log_normaliser(chol: np.ndarray, white: np.ndarray) -> np.ndarray:
    """Per-coordinate terms of log int exp(lin'h - h'Ph/2) dh (up to (2 pi)^(n/2)):
    0.5 |L^-1 lin|^2 - log diag(L); sum them over a group's coordinates."""
    return 0.5 * white**2 - np.log(chol[0])


def forward_filter(first: np.ndarray, trans: np.ndarray, em: np.ndarray) -> np.ndarray:
    """Normalised HMM forward messages alpha_t ~ (alpha_{t-1} trans) * em_t, alpha_0 ~ first *
    em_0, (T, L), by a blocked scan: the bins after bin 0 are cut into ~sqrt(T) blocks whose
    running products of the step matrices trans diag(em_t) are formed for all blocks at once
    (rows normalised one by one, their log scales kept), then the messages cross the block
    starts one block at a time: ~2 sqrt(T) vectorised steps instead of T."""
    T, L = em.shape
    alpha = np.empty((T, L))
    a = first * em[0]
    alpha[0] = a / a.sum()
    if T == 1:
        return alpha
    size = max(1, math.isqrt(T - 1))
    n_blocks = -(-(T - 1) // size)
    steps = np.ones((n_blocks * size, L))
    steps[: T - 1] = em[1:]
    steps = steps.reshape(n_blocks, size, L)
    prod = np.empty((n_blocks, size, L, L))  # row-normalised running products per block
    log_scale = np.empty((n_blocks, size, L))
    cur, scale = np.broadcast_to(np.eye(L), (n_blocks, L, L)), np.zeros((n_blocks, L))
    for j in range(size):
        cur = (cur @ trans) * steps[:, j, None, :]
        total = np.maximum(cur.sum(axis=-1), 1e-300)
        cur = cur / total[..., None]
        scale = scale + np.log(total)
        prod[:, j], log_scale[:, j] = cur, scale
    starts = np.empty((n_blocks, L))
    a = alpha[0]
    for b in range(n_blocks):
        starts[b] = a
        log_w = np.log(a + 1e-300) + log_scale[b, -1]
        a = np.exp(log_w - log_w.max()) @ prod[b, -1]
        a = a / a.sum()
    log_w = np.log(starts + 1e-300)[:, None, :] + log_scale  # (blocks, size, L)
    w = np.exp(log_w - log_w.max(axis=-1, keepdims=True))
    rows = np.einsum("bjl,bjlm->bjm", w, prod).reshape(-1, L)[: T - 1]
    alpha[1:] = rows / rows.sum(axis=1, keepdims=True)
    return alpha


def _speed_states(x: np.ndarray, n_states: int, rng: np.random.Generator) -> np.ndarray:
    """Initial states: k-means on the smoothed speed of the initial latents (clusters, T, p),
    which separates still from moving stretches, the contrast the dynamics are built on."""
    step = np.linalg.norm(np.diff(x, axis=1), axis=-1)  # (clusters, T-1)
    step = step / (np.median(step, axis=1, keepdims=True) + 1e-12)
    speed = np.concatenate([[0.0], step.mean(axis=0)])
    from scipy.ndimage import uniform_filter1d

    speed = uniform_filter1d(speed, 9, mode="nearest")
    if n_states < 2 or np.ptp(speed) == 0:
        return np.zeros(x.shape[1], dtype=np.int64)
    centres = np.quantile(speed, np.linspace(0.2, 0.8, n_states))
    for _ in range(50):
        labels = np.abs(speed[:, None] - centres[None]).argmin(1)
        centres = np.array(
            [
                speed[labels == j].mean() if (labels == j).any() else centres[j]
                for j in range(n_states)
            ]
        )
    return labels.astype(np.int64)


def _k_subspaces(
    signals: np.ndarray, k: int, dim: int, rng: np.random.Generator, restarts: int = 24
) -> np.ndarray:
    """Initial labels: k-subspaces clustering of neuron-centred smoothed log rates.

    Neurons of one cluster have log rates in a common ``dim``-dimensional subspace (spanned by the
    cluster's mean and latent), so each neuron goes to the cluster whose subspace (fitted without
    that neuron, so small clusters do not fit their own members trivially) leaves the smallest
    residual. Best of a few random restarts. Everything works on the neurons' Gram matrix: the
    squared projection of x_n on the span of rows M is ``G[n,M] G[M,M]^+ G[M,n]`` restricted to
    the top ``dim`` eigenpairs of ``G[M,M]``, so no SVD over time bins is needed.
    """
    n = signals.shape[0]
    x = signals / (np.linalg.norm(signals, axis=1, keepdims=True) + 1e-12)
    gram = x @ x.T

    def projection(rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Squared norm of each target's projection on the top-``dim`` subspace of ``rows``
        (rows: (..., m) index sets, targets: (..., t)): (..., t)."""
        g = gram[rows[..., :, None], rows[..., None, :]]
        val, vec = np.linalg.eigh(g)
        val, vec = val[..., -dim:], vec[..., -dim:]
        inv = np.where(val > 1e-10, 1.0 / np.maximum(val, 1e-10), 0.0)
        cross = gram[rows[..., :, None], targets[..., None, :]]  # (..., m, t)
        coef = np.swapaxes(vec, -1, -2) @ cross  # (..., dim, t)
        return (coef**2 * inv[..., :, None]).sum(-2)

    def residuals(labels):
        res = np.ones((n, k))
        for j in range(k):
            members = np.flatnonzero(labels == j)
            if members.size == 0:
                continue
            res[:, j] = 1.0 - projection(members, np.arange(n))
            if members.size == 1:
                res[members, j] = 1.0
                continue
            # Leave-one-out residual for the members themselves, batched over members.
            others = np.array([members[members != i] for i in members])
            res[members, j] = 1.0 - projection(others, members[:, None])[:, 0]
        return res

    best, best_cost = None, np.inf
    for _ in range(restarts):
        labels = rng.permutation(np.arange(n) % k)
        for _ in range(30):
            res = residuals(labels)
            new = res.argmin(1)
            if np.array_equal(new, labels):
                break
            labels = new
        cost = res[np.arange(n), labels].sum()
        if cost < best_cost:
            best, best_cost = labels, cost
    _, best = np.unique(best, return_inverse=True)
    return best


LATENT_DRAWS = 250  # latent trajectories kept per chain for the credible bands


def _block_selection_ratio(s: np.ndarray, proposal: np.ndarray, start: int, end: int) -> float:
    """Metropolis-Hastings acceptance of a block move from s to proposal on bins start..end-1.

    The block is selected through the current sequence (a boundary picked uniformly, then the
    block of w bins placed with it at one of the w - 1 inner positions), so a block is selected
    with probability k / (n (w - 1)): k boundaries inside it, n in the whole sequence. The new
    filling is drawn from the exact conditional over the fillings, the same set either way, so
    target and proposal cancel and the acceptance is the ratio of the selection probabilities,
    (k' / n') / (k / n): 0 when the proposal has no boundary inside the block (no reverse move).
    """

    def inside_and_all(x: np.ndarray) -> tuple[int, int]:
        return int(np.count_nonzero(np.diff(x[start:end]))), int(np.count_nonzero(np.diff(x)))

    k_new, n_new = inside_and_all(proposal)
    k_old, n_old = inside_and_all(s)
    return min(1.0, (k_new / n_new) / (k_old / n_old)) if k_new else 0.0


def _removable_segments(s: np.ndarray, max_length: int) -> list[tuple[int, int]]:
    """(first, end) of each segment of at most ``max_length`` bins that a segment death can
    remove: one between two runs of one state, or the first or the last segment of a sequence
    of more than one segment, whose state has bins elsewhere too."""
    starts = np.flatnonzero(np.diff(s)) + 1
    bounds = np.r_[0, starts, s.size]
    n_segments = bounds.size - 1
    if n_segments < 2:
        return []
    bins_in_state = np.bincount(s)
    return [
        (int(bounds[i]), int(bounds[i + 1]))
        for i in range(n_segments)
        if bounds[i + 1] - bounds[i] <= max_length
        and bins_in_state[s[bounds[i]]] > bounds[i + 1] - bounds[i]
        and (i == 0 or i == n_segments - 1 or s[bounds[i] - 1] == s[bounds[i + 1]])
    ]


def diagnostic_bins(n_time: int, max_bins: int = 50) -> np.ndarray:
    """The time bins whose log rates are kept per draw for the convergence diagnostics: every
    ``ceil(n_time / max_bins)``-th bin from bin 0 (at most ``max_bins``), for every neuron."""
    return np.arange(0, n_time, max(1, math.ceil(n_time / max_bins)))


class Chain:
    """One chain, advanced a segment of iterations at a time. It pickles (sampler, state and
    position), so each segment can run on any worker; the draws of a segment are returned, not
    kept in the chain, so a chain stays small between segments.

    Only what the summary needs is kept per draw: labels ``z`` and states ``s``, dispersions,
    cluster latents ``h`` (float32, every ``latent_stride``-th kept draw, at most
    ``LATENT_DRAWS`` for ``n_iterations``: they only serve the credible bands), the numbers of
    clusters and states, and the log rates of the :func:`diagnostic_bins`; the full (neuron,
    time) log rate is accumulated as a running sum (``log_rate_sum``, with ``n_kept``), not
    stored draw by draw.
    """

    def __init__(self, counts: np.ndarray, settings: Settings, seed: int):
        self.settings = settings
        self.sampler = BiclusterSampler(counts, settings, seed=seed)
        self.state = self.sampler.initial_state()
        self.iteration = 0
        self.bins = diagnostic_bins(self.sampler.T)
        n_kept = len(range(settings.burn_in, settings.n_iterations, settings.thin))
        self.latent_stride = max(1, math.ceil(n_kept / LATENT_DRAWS))

    @property
    def done(self) -> bool:
        return self.iteration >= self.settings.n_iterations

    def advance(self, n_iterations: int) -> dict:
        """Run ``n_iterations`` more iterations (not past ``settings.n_iterations``); returns
        the draws kept in them (see the class)."""
        cfg, sampler, st = self.settings, self.sampler, self.state
        keep: dict[str, list] = {key: [] for key in DRAW_KEYS}
        log_rate_sum = np.zeros((sampler.N, sampler.T))
        for it in range(self.iteration, min(cfg.n_iterations, self.iteration + n_iterations)):
            sampler.burn_in = it < cfg.burn_in
            sampler.split_merge_active = sampler.burn_in
            sampler.redundant_active = it >= cfg.burn_in // 2
            sampler.sweep(st)
            self.iteration = it + 1
            kept = (it - cfg.burn_in) // cfg.thin  # index of this draw among the kept ones
            if it < cfg.burn_in or (it - cfg.burn_in) % cfg.thin:
                continue
            log_rate = sampler.log_mean(st)
            log_rate_sum += log_rate
            keep["log_rate"].append(log_rate[:, self.bins])
            keep["z"].append(st.z.copy())
            keep["s"].append(st.s.copy())
            keep["dispersion"].append(st.dispersion.copy())
            keep["n_clusters"].append(np.unique(st.z).size)
            keep["n_states"].append(np.unique(st.s).size)
            if kept % self.latent_stride == 0:
                keep["h"].append(st.h.astype(np.float32))
        out = {k: np.asarray(v) for k, v in keep.items()}
        out.update(
            log_rate_sum=log_rate_sum,
            n_kept=len(keep["z"]),
            diagnostic_bins=self.bins,
            latent_stride=self.latent_stride,
        )
        return out


DRAW_KEYS = ("z", "s", "dispersion", "h", "n_clusters", "n_states", "log_rate")


def advance_chain(chain: Chain, n_iterations: int) -> tuple[Chain, dict]:
    """:meth:`Chain.advance` as a task: the advanced chain and its segment's draws."""
    draws = chain.advance(n_iterations)
    return chain, draws


def join_draws(segments: list[dict]) -> dict:
    """The draws of one chain's consecutive segments as if kept in one run."""
    out = {}
    for key in DRAW_KEYS:
        filled = [seg[key] for seg in segments if len(seg[key])]
        out[key] = np.concatenate(filled) if filled else segments[0][key]
    out.update(
        log_rate_sum=sum(seg["log_rate_sum"] for seg in segments),
        n_kept=sum(seg["n_kept"] for seg in segments),
        diagnostic_bins=segments[0]["diagnostic_bins"],
        latent_stride=segments[0]["latent_stride"],
    )
    return out


def run_chain(counts: np.ndarray, settings: Settings, seed: int) -> dict[str, np.ndarray]:
    """Run one chain through all ``settings.n_iterations``; returns its kept draws (after
    burn-in, thinned; see :class:`Chain`) with a draw axis."""
    return Chain(counts, settings, seed).advance(settings.n_iterations)
