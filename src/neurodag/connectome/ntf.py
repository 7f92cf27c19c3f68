"""Non-negative CP decomposition of the affinity tensor (Dyballa et al., ICLR 2024, stage 2).

``X(pair, window, worm) ~ sum_r a_r (x) b_r (x) c_r`` with non-negative factors, fitted by
hierarchical alternating least squares (HALS; Cichocki & Phan 2009) with the accelerations of
Gillis & Glineur (2012): each mode's matricized-tensor-times-Khatri-Rao product (the costly
step) is computed once and reused by several cheap column sweeps.

Missing entries (neurons absent from a worm, windows past a worm's end) never act as zeros. The
tensor is held as its observed fibres (:class:`ObservedTensor`: per worm, the pairs it recorded,
each with its window fibre), so memory and work grow with the pairs recorded together, never with
all pairs x worms. Each row of every mode gets its own Gram matrix over the entries it observes
(a pair: the worms that recorded it; a worm: its pairs; a window: the worms it falls inside), so
HALS minimises the masked error exactly; the products are sparse-dense (entries x windows x rank).
Entries missing inside an observed fibre (a window where one neuron's samples are invalid) are
imputed by expectation-maximization (Tomasi & Bro 2005), refilled from the current model every
iteration.

Rank is chosen as the tensor-decomposition literature recommends (Williams et al. 2018, Neuron):
fit several random restarts per rank, and look at the reconstruction error and at the replicability
of the factors across restarts (factor similarity after optimal matching of components). Two
refinements, both from the same logic:

- Replicability is measured among the restarts that reach the lowest error (within a small
  margin), as Williams et al. plot similarity against error: a restart stuck in a poor
  local optimum says nothing about whether the best model is unique, only that HALS has other
  basins. (The non-convex fits of a masked tensor do have such basins.)
- Every component of the chosen model must be shared across worms. The worm factor says how much
  each animal expresses a component; its participation ratio ``(sum c)^2 / sum c^2`` is the
  effective number of worms carrying it (1 = one worm, M = all equally). A component carried by a
  minority of the animals models one recording's idiosyncrasy (its own spontaneous episode), not a
  functional network the animals share; a rank that needs one is rejected, as a rank whose
  restarts disagree is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

EPS = 1e-12


@dataclass
class CPFit:
    """A fitted CP model: ``weights[r] * factors[0][:, r] (x) factors[1][:, r] (x) ...``."""

    weights: np.ndarray
    factors: list[np.ndarray]  # unit-norm columns, non-negative
    error: float  # relative error on observed entries
    n_iter: int
    errors: list[float] = field(default_factory=list)

    def reconstruct(self) -> np.ndarray:
        a, b, c = self.factors
        return np.einsum("r,pr,wr,mr->pwm", self.weights, a, b, c)


def _normalize(factors: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    norms = [np.linalg.norm(f, axis=0) for f in factors]
    weights = np.prod(norms, axis=0)
    unit = [f / np.maximum(n, EPS) for f, n in zip(factors, norms, strict=True)]
    order = np.argsort(-weights)
    return weights[order], [u[:, order] for u in unit]


def _hals_sweeps(factor: np.ndarray, mttkrp: np.ndarray, gram: np.ndarray, sweeps: int) -> None:
    """In-place HALS column updates of ``factor`` for ``min ||X_(n) - factor K^T||``, >= 0."""
    rank = factor.shape[1]
    first_change = None
    for sweep in range(sweeps):
        change = 0.0
        for r in range(rank):
            old = factor[:, r].copy()
            step = (mttkrp[:, r] - factor @ gram[:, r]) / max(gram[r, r], EPS)
            factor[:, r] = np.maximum(old + step, EPS)
            change += float(np.sum((factor[:, r] - old) ** 2))
        # Gillis & Glineur: stop the inner loop once it gains little relative to its first sweep
        if sweep == 0:
            first_change = change
        elif change <= 0.01 * first_change:
            break


def _hals_rows(factor: np.ndarray, mttkrp: np.ndarray, grams: np.ndarray, sweeps: int) -> None:
    """HALS with a Gram matrix per row (``grams[i]``, R x R): the exact masked least-squares
    update when each row sees its own subset of the other modes' entries."""
    rank = factor.shape[1]
    for _ in range(sweeps):
        for r in range(rank):
            diag = grams[:, r, r]
            step = (mttkrp[:, r] - np.einsum("is,is->i", factor, grams[:, :, r])) / np.maximum(
                diag, EPS
            )
            factor[:, r] = np.where(diag > EPS, np.maximum(factor[:, r] + step, EPS), factor[:, r])


@dataclass
class ObservedTensor:
    """The observed fibres of a ``(pair, window, worm)`` tensor: row ``e`` of ``values`` is the
    window fibre of pair ``pair[e]`` in worm ``worm[e]``; every (pair, worm) not listed is missing.

    This is the affinity tensor as recorded (a worm holds only the pairs of neurons it imaged), so
    its memory grows with the pairs recorded together, never with all pairs x worms. NaN inside a
    listed fibre is a missing entry too (a window past a worm's end, or one where a neuron's window
    is invalid). Entries are sorted by worm."""

    values: np.ndarray  # (entry, window), NaN = missing
    pair: np.ndarray  # (entry,) index on the pair mode
    worm: np.ndarray  # (entry,) index on the worm mode, non-decreasing
    shape: tuple[int, int, int]  # (pairs, windows, worms)
    # each pair's number among all pairs of a larger set (e.g. all pairs of the kept neurons),
    # and that set's size: random starts are drawn over the larger set and pairs take their own
    # rows, so a pair's start does not depend on which other pairs some worm recorded
    pair_key: np.ndarray | None = None
    n_pair_keys: int | None = None

    def __post_init__(self) -> None:
        self.pair = np.asarray(self.pair, dtype=np.int64)
        self.worm = np.asarray(self.worm, dtype=np.int64)
        n_pair, n_window, n_worm = self.shape
        if self.values.ndim != 2 or self.values.shape != (self.pair.size, n_window):
            raise ValueError(
                f"values {self.values.shape} do not match the entries and {self.shape}"
            )
        if self.pair.size and (
            self.pair.min() < 0 or self.pair.max() >= n_pair or self.worm.min() < 0
            or self.worm.max() >= n_worm or np.any(np.diff(self.worm) < 0)
        ):  # fmt: skip
            raise ValueError("entries must index the pair and worm modes, sorted by worm")

    @classmethod
    def from_dense(cls, tensor: np.ndarray) -> ObservedTensor:
        """The (pair, worm) fibres of a dense tensor with some finite entry."""
        seen = np.isfinite(tensor).any(axis=1)  # (pair, worm)
        worm, pair = np.nonzero(seen.T)
        return cls(tensor[pair, :, worm], pair, worm, tensor.shape)

    def to_dense(self) -> np.ndarray:
        out = np.full(self.shape, np.nan)
        out[self.pair, :, self.worm] = self.values
        return out

    @property
    def worm_bounds(self) -> np.ndarray:
        """``bounds[m]:bounds[m + 1]`` are worm m's entries."""
        return np.searchsorted(self.worm, np.arange(self.shape[2] + 1))


class _Observed:
    """The precomputed sparse structure of one fit: entries as sparse incidence matrices."""

    def __init__(self, data: ObservedTensor):
        from scipy import sparse

        n_pair, n_window, n_worm = data.shape
        observed = np.isfinite(data.values)
        self.x = np.where(observed, data.values, 0.0).astype(np.float64)
        self.pair, self.worm = data.pair, data.worm
        self.bounds = data.worm_bounds
        entries = np.arange(self.pair.size)
        ones = np.ones(self.pair.size)
        # pair <- entry and worm <- entry sums, and the pair-by-worm incidence (nnz = entries)
        self.to_pair = sparse.csr_matrix((ones, (self.pair, entries)), shape=(n_pair, entries.size))
        self.to_worm = sparse.csr_matrix((ones, (self.worm, entries)), shape=(n_worm, entries.size))
        self.pair_worm = sparse.csr_matrix((ones, (self.pair, self.worm)), shape=(n_pair, n_worm))
        window_seen = np.zeros((n_window, n_worm))
        for m in range(n_worm):
            window_seen[:, m] = observed[self.bounds[m] : self.bounds[m + 1]].any(axis=0)
        self.window_seen = window_seen
        # entries missing inside a listed fibre within a window the worm observes: EM-imputed
        gap = ~observed & (window_seen.T[self.worm] > 0)
        self.gap_entry, self.gap_window = np.nonzero(gap)
        self.norm_sq = float(np.sum(self.x**2))
        self.pair_seen = np.bincount(self.pair, minlength=n_pair) > 0
        self.worm_count = np.diff(self.bounds)  # entries are sorted by worm: np.repeat spreads

    def model_at_gaps(self, factors: list[np.ndarray]) -> np.ndarray:
        a, b, c = factors
        e, w = self.gap_entry, self.gap_window
        return np.einsum("ir,ir,ir->i", a[self.pair[e]], b[w], c[self.worm[e]])

    def per_worm_gram(self, rows: np.ndarray) -> np.ndarray:
        """``(M, R, R)``: sum over each worm's entries of ``rows[e] rows[e]'``."""
        return np.stack(
            [
                rows[lo:hi].T @ rows[lo:hi]
                for lo, hi in zip(self.bounds[:-1], self.bounds[1:], strict=True)
            ]
        )

    def iteration(self, factors: list[np.ndarray], inner_sweeps: int) -> float:
        """One exact masked-HALS iteration (worm, pair, window modes) over the observed fibres;
        returns ``-2<X, M> + ||M||^2`` over them (add ``||X||^2`` for the squared residual)."""
        a, b, c = factors
        n_worm = len(c)
        a_e = np.take(a, self.pair, axis=0)  # (entry, R) rows of the pair factor
        aoa = self.per_worm_gram(a_e)
        bvb = np.einsum("wm,wr,ws->mrs", self.window_seen, b, b)
        xb = self.x @ b  # (entry, R)
        # worm mode: per-worm Gram = (A' O_m A) o (B' V_m B)
        mttkrp_c = self.to_worm @ (xb * a_e)
        _hals_rows(c, mttkrp_c, aoa * bvb, inner_sweeps)
        cc = c[:, :, None] * c[:, None, :]  # (M, R, R)
        # pair mode: Gram of pair p = sum_m O[p, m] (B' V_m B) o c_m c_m'
        c_e = np.repeat(c, self.worm_count, axis=0)
        mttkrp_a = self.to_pair @ (xb * c_e)
        grams_a = (self.pair_worm @ (bvb * cc).reshape(n_worm, -1)).reshape(len(a), *cc.shape[1:])
        _hals_rows(a, mttkrp_a, grams_a, inner_sweeps)
        a_e = np.take(a, self.pair, axis=0)
        aoa = self.per_worm_gram(a_e)
        grams_b = (self.window_seen @ (aoa * cc).reshape(n_worm, -1)).reshape(len(b), *cc.shape[1:])
        mttkrp_b = ((a_e * c_e).T @ self.x).T  # (R, E) @ (E, W): faster than x.T @ (E, R)
        _hals_rows(b, mttkrp_b, grams_b, inner_sweeps)
        bvb = np.einsum("wm,wr,ws->mrs", self.window_seen, b, b)
        model_sq = float(np.sum(aoa * bvb * cc))
        return -2 * float(np.sum(b * mttkrp_b)) + model_sq

    def residual_sq(self, factors: list[np.ndarray], chunk: int = 65536) -> float:
        """Squared residual over the observed entries, computed fibre by fibre."""
        a, b, c = factors
        total = 0.0
        for lo in range(0, self.pair.size, chunk):
            hi = lo + chunk
            model = (np.take(a, self.pair[lo:hi], axis=0) * c[self.worm[lo:hi]]) @ b.T
            seen = self.window_seen.T[self.worm[lo:hi]] > 0
            total += float(np.sum(np.where(seen, self.x[lo:hi] - model, 0.0) ** 2))
        e, w = self.gap_entry, self.gap_window
        if e.size:  # imputed entries are not data
            total -= float(np.sum((self.x[e, w] - self.model_at_gaps(factors)) ** 2))
        return max(total, 0.0)


def non_negative_cp_hals(
    tensor: np.ndarray | ObservedTensor,
    rank: int,
    *,
    n_iter_max: int = 500,
    tol: float = 1e-6,
    inner_sweeps: int = 5,
    random_state: int | np.random.Generator | None = None,
    init: list[np.ndarray] | None = None,
) -> CPFit:
    """Non-negative CP of a 3-way tensor; missing entries are masked out, never zeros.

    ``tensor`` is dense (NaN = missing) or an :class:`ObservedTensor`. A dense tensor with
    missing entries is fitted through its observed fibres, exactly as the ``ObservedTensor`` of
    it. A pair with no observed entry has no estimate: its loadings are 0.

    Stops when the relative error changes by less than ``tol`` between iterations (the criterion
    tensorly's ``non_negative_parafac`` uses) or after ``n_iter_max`` iterations.
    """
    rng = np.random.default_rng(random_state)
    if isinstance(tensor, ObservedTensor) or not np.isfinite(tensor).all():
        if not isinstance(tensor, ObservedTensor):
            if tensor.ndim != 3:
                raise ValueError("expected a 3-way tensor")
            tensor = ObservedTensor.from_dense(tensor)
        return _fit_observed(tensor, rank, n_iter_max, tol, inner_sweeps, rng, init)
    if tensor.ndim != 3:
        raise ValueError("expected a 3-way tensor")
    x = tensor.astype(np.float64)
    if (x < 0).any():
        raise ValueError("non-negative CP needs a non-negative tensor")
    norm_x = np.sqrt(np.sum(x**2))
    if norm_x == 0:
        raise ValueError("the tensor is all zero")
    if init is not None:
        factors = [np.array(f, dtype=np.float64) for f in init]
    else:  # scale so the initial model has the data's magnitude
        scale = (x.mean() / rank) ** (1 / 3)
        factors = [rng.uniform(0.1, 1.0, (n, rank)) * scale for n in x.shape]
    errors: list[float] = []
    n_iter = 0
    for n_iter in range(1, n_iter_max + 1):
        a, b, c = factors
        # worm mode: X_(3) (B kr A) as a (P*W, M)^T @ (P*W, R) product
        kr_ab = (a[:, None, :] * b[None, :, :]).reshape(-1, rank)
        mttkrp_c = x.reshape(-1, x.shape[2]).T @ kr_ab
        _hals_sweeps(c, mttkrp_c, (a.T @ a) * (b.T @ b), inner_sweeps)
        # pair and window modes share the contraction with the worm factor
        xc = x @ c  # (P, W, R)
        mttkrp_a = np.einsum("pwr,wr->pr", xc, b)
        _hals_sweeps(a, mttkrp_a, (b.T @ b) * (c.T @ c), inner_sweeps)
        mttkrp_b = np.einsum("pwr,pr->wr", xc, a)
        gram_b = (a.T @ a) * (c.T @ c)
        _hals_sweeps(b, mttkrp_b, gram_b, inner_sweeps)
        # ||X - Xhat||^2 from the last mode's products, without forming Xhat
        inner = np.sum(b * mttkrp_b)
        model_sq = np.sum(gram_b * (b.T @ b))
        errors.append(np.sqrt(max(norm_x**2 - 2 * inner + model_sq, 0.0)) / norm_x)
        # rescale columns so no mode's norm runs away (keeps HALS well conditioned)
        weights, unit = _normalize(factors)
        factors = [u * weights ** (1 / 3) for u in unit]
        if n_iter > 1 and abs(errors[-2] - errors[-1]) < tol:
            break
    weights, unit = _normalize(factors)
    final = float(np.linalg.norm(x - np.einsum("r,pr,wr,mr->pwm", weights, *unit)) / norm_x)
    return CPFit(weights=weights, factors=unit, error=final, n_iter=n_iter, errors=errors)


def _fit_observed(data: ObservedTensor, rank, n_iter_max, tol, inner_sweeps, rng, init) -> CPFit:
    """Masked HALS over the observed fibres (see the module docstring)."""
    obs = _Observed(data)
    if (obs.x < 0).any():
        raise ValueError("non-negative CP needs a non-negative tensor")
    norm_obs = np.sqrt(obs.norm_sq)
    if norm_obs == 0:
        raise ValueError("the tensor is all zero")
    if init is not None:
        factors = [np.array(f, dtype=np.float64) for f in init]
    else:  # scale so the initial model has the observed data's magnitude
        n_seen = np.isfinite(data.values).sum()
        scale = (obs.x.sum() / n_seen / rank) ** (1 / 3)
        keys = data.n_pair_keys if data.pair_key is not None else data.shape[0]
        factors = [rng.uniform(0.1, 1.0, (n, rank)) * scale for n in (keys, *data.shape[1:])]
        if data.pair_key is not None:
            factors[0] = factors[0][data.pair_key]
    # a pair no worm observed has no estimate (0, not a random loading)
    factors[0][~obs.pair_seen] = 0.0
    has_gaps = obs.gap_entry.size > 0
    if has_gaps:  # EM (Tomasi & Bro 2005): gaps hold the current model
        obs.x[obs.gap_entry, obs.gap_window] = obs.model_at_gaps(factors)
    errors: list[float] = []
    n_iter = 0
    for n_iter in range(1, n_iter_max + 1):
        filled_sq = float(np.sum(obs.x**2)) if has_gaps else obs.norm_sq
        residual = filled_sq + obs.iteration(factors, inner_sweeps)
        if has_gaps:
            model = obs.model_at_gaps(factors)
            gaps = obs.x[obs.gap_entry, obs.gap_window]
            residual -= float(np.sum((gaps - model) ** 2))
            obs.x[obs.gap_entry, obs.gap_window] = model
        errors.append(np.sqrt(max(residual, 0.0)) / norm_obs)
        weights, unit = _normalize(factors)
        factors = [u * weights ** (1 / 3) for u in unit]
        if n_iter > 1 and abs(errors[-2] - errors[-1]) < tol:
            break
    weights, unit = _normalize(factors)
    final = float(np.sqrt(obs.residual_sq([unit[0] * weights, unit[1], unit[2]])) / norm_obs)
    return CPFit(weights=weights, factors=unit, error=final, n_iter=n_iter, errors=errors)


def factor_similarity(fit_a: CPFit, fit_b: CPFit) -> float:
    """Williams et al.'s similarity score: mean over matched components of the product of the
    factors' cosine similarities times the weight ratio, after optimal matching of components."""
    rank = len(fit_a.weights)
    score = np.ones((rank, len(fit_b.weights)))
    for fa, fb in zip(fit_a.factors, fit_b.factors, strict=True):
        score *= fa.T @ fb  # unit-norm, non-negative columns: cosines in [0, 1]
    wa, wb = fit_a.weights[:, None], fit_b.weights[None, :]
    score *= np.minimum(wa, wb) / np.maximum(np.maximum(wa, wb), EPS)
    rows, cols = linear_sum_assignment(-score)
    return float(score[rows, cols].sum() / max(rank, len(fit_b.weights)))


def worm_spread(fit: CPFit, mode: int = 2) -> np.ndarray:
    """Per component, the effective fraction of worms expressing it: participation ratio of the
    (non-negative) worm factor, ``(sum_m c_m)^2 / sum_m c_m^2``, divided by the number of worms."""
    c = fit.factors[mode]
    return (c.sum(0) ** 2 / np.maximum((c**2).sum(0), EPS)) / len(c)


def _fit_job(tensor, rank: int, seed: np.random.SeedSequence, fit_kwargs: dict) -> CPFit:
    """One fit of the rank scan (a Dask task)."""
    return non_negative_cp_hals(
        tensor, rank, random_state=np.random.default_rng(seed), **fit_kwargs
    )


@dataclass
class RankScan:
    ranks: list[int]
    errors: np.ndarray  # (rank, restart) relative errors
    similarity: np.ndarray  # (rank,) mean similarity to the best of the restarts near its error
    spread: np.ndarray  # (rank,) smallest worm spread among the best fit's components
    best: dict[int, CPFit]
    chosen: int


def select_rank(
    tensor: np.ndarray | ObservedTensor,
    ranks: list[int],
    *,
    restarts: int = 3,
    min_similarity: float = 0.8,
    min_gain: float = 0.02,
    error_margin: float = 1e-3,
    min_spread: float = 0.0,
    random_state: int = 0,
    client=None,
    **fit_kwargs,
) -> RankScan:
    """Fit ``restarts`` random starts per rank; choose the largest rank whose best fit

    - replicates: mean similarity to it of the other restarts whose relative error exceeds the
      best one's by at most ``error_margin`` is >= ``min_similarity`` (no such restart: the best
      basin was reached once, which is no evidence of replication, so the rank fails);
    - is shared across worms: every component's :func:`worm_spread` >= ``min_spread``;
    - and whose extra component still lowers the best error by at least ``min_gain`` of the
      drop from the smallest to the largest rank scanned.

    The smallest rank is the fallback when no larger one qualifies. With a Dask ``client`` the
    fits run on its workers (the tensor is sent to each worker once); each fit has its own seed,
    so the scan is the same either way."""
    seeds = np.random.SeedSequence(random_state).spawn(len(ranks) * restarts)
    errors = np.zeros((len(ranks), restarts))
    similarity = np.zeros(len(ranks))
    spread = np.zeros(len(ranks))
    best: dict[int, CPFit] = {}
    from neurodag.progress import progress

    jobs = [(rank, s) for rank in ranks for s in range(restarts)]
    bar = progress(desc="NTF rank scan", total=len(jobs), unit="fit")
    results: dict[tuple[int, int], CPFit] = {}
    if client is None:
        for k, (rank, s) in enumerate(jobs):
            seed = np.random.default_rng(seeds[k])
            results[rank, s] = non_negative_cp_hals(tensor, rank, random_state=seed, **fit_kwargs)
            bar.update()
    else:
        from distributed import as_completed

        [shared] = client.scatter([tensor], broadcast=True)
        # the largest ranks (the longest fits) first, so no long fit starts last
        order = sorted(range(len(jobs)), key=lambda k: -jobs[k][0])
        futures = {
            client.submit(_fit_job, shared, jobs[k][0], seeds[k], fit_kwargs, pure=False): jobs[k]
            for k in order
        }
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            future.release()
            bar.update()
    bar.close()
    for k, rank in enumerate(ranks):
        fits = [results[rank, s] for s in range(restarts)]
        errors[k] = [f.error for f in fits]
        top = int(np.argmin(errors[k]))
        best[rank] = fits[top]
        spread[k] = float(worm_spread(fits[top]).min())
        near = [
            f for s, f in enumerate(fits) if s != top and f.error <= errors[k, top] + error_margin
        ]
        if restarts == 1:
            similarity[k] = 1.0
        else:
            similarity[k] = float(np.mean([factor_similarity(fits[top], f) for f in near] or [0]))
    best_error = errors.min(axis=1)
    drop = max(best_error[0] - best_error[-1], EPS)
    chosen = ranks[0]
    for k in range(1, len(ranks)):
        gain = best_error[k - 1] - best_error[k]
        if gain >= min_gain * drop and similarity[k] >= min_similarity and spread[k] >= min_spread:
            chosen = ranks[k]
    return RankScan(
        ranks=list(ranks),
        errors=errors,
        similarity=similarity,
        spread=spread,
        best=best,
        chosen=chosen,
    )
