"""Non-negative CP decomposition of the affinity tensor (Dyballa et al., ICLR 2024, stage 2).

``X(pair, window, worm) ~ sum_r a_r (x) b_r (x) c_r`` with non-negative factors, fitted by
hierarchical alternating least squares (HALS; Cichocki & Phan 2009) with the accelerations of
Gillis & Glineur (2012): each mode's matricized-tensor-times-Khatri-Rao product (the costly
step) is computed once and reused by several cheap column sweeps.

Missing entries (neurons absent from a worm, windows past a worm's end) never act as zeros. When
the missingness factorizes per worm (pair seen x window seen: the affinity tensor's case) each row
gets its own Gram matrix over the entries it observes, so HALS minimises the masked error exactly,
and the products run over each worm's observed slab only (the tensor is mostly missing). Otherwise
missing entries are imputed by expectation-maximization (Tomasi & Bro 2005), refilled from the
current model every iteration.

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


def _factorized_mask(observed: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(pair_seen(P, M), window_seen(W, M))`` if ``observed = pair_seen x window_seen`` per worm.

    That is the affinity tensor's missingness: a pair is missing in a worm where one of its neurons
    was not recorded, a window where it runs past the worm's end."""
    pair_seen = observed.any(axis=1)
    window_seen = observed.any(axis=0)
    if np.array_equal(observed, pair_seen[:, None, :] & window_seen[None, :, :]):
        return pair_seen.astype(np.float64), window_seen.astype(np.float64)
    return None


def _worm_blocks(x: np.ndarray, pair_seen: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per worm, the pairs it observes and their ``(pair, window)`` slab: the tensor is mostly
    missing (a pair is seen only where both neurons were imaged), so products run over these."""
    blocks = []
    for m in range(x.shape[2]):
        rows = np.flatnonzero(pair_seen[:, m])
        blocks.append((rows, np.ascontiguousarray(x[rows, :, m])))
    return blocks


def _masked_iteration(blocks, factors, pair_seen, window_seen, inner_sweeps) -> float:
    """One exact masked-HALS iteration over the observed slabs; returns ``-2<X, M> + ||M||^2``
    on the observed entries (add ``||X||^2`` for the squared residual)."""
    a, b, c = factors
    aoa = np.einsum("pm,pr,ps->mrs", pair_seen, a, a)
    bvb = np.einsum("wm,wr,ws->mrs", window_seen, b, b)
    # worm mode: per-worm Gram = (A' O_m A) o (B' V_m B)
    xb = [slab @ b for _, slab in blocks]  # (P_m, R) each
    mttkrp_c = np.array(
        [np.sum(xbm * a[rows], axis=0) for (rows, _), xbm in zip(blocks, xb, strict=True)]
    )
    _hals_rows(c, mttkrp_c, aoa * bvb, inner_sweeps)
    cc = c[:, :, None] * c[:, None, :]  # (M, R, R)
    # pair mode: Gram of pair p = sum_m O[p, m] (B' V_m B) o c_m c_m'
    mttkrp_a = np.zeros_like(a)
    for m, ((rows, _), xbm) in enumerate(zip(blocks, xb, strict=True)):
        mttkrp_a[rows] += xbm * c[m]
    grams_a = (pair_seen @ (bvb * cc).reshape(len(c), -1)).reshape(len(a), *cc.shape[1:])
    _hals_rows(a, mttkrp_a, grams_a, inner_sweeps)
    aoa = np.einsum("pm,pr,ps->mrs", pair_seen, a, a)
    grams_b = (window_seen @ (aoa * cc).reshape(len(c), -1)).reshape(len(b), *cc.shape[1:])
    mttkrp_b = sum(slab.T @ (a[rows] * c[m]) for m, (rows, slab) in enumerate(blocks))
    _hals_rows(b, mttkrp_b, grams_b, inner_sweeps)
    bvb = np.einsum("wm,wr,ws->mrs", window_seen, b, b)
    model_sq = float(np.sum(aoa * bvb * cc))
    return -2 * float(np.sum(b * mttkrp_b)) + model_sq


def _reconstruct(factors: list[np.ndarray]) -> np.ndarray:
    a, b, c = factors
    return (a[:, None, :] * b[None, :, :]) @ c.T


def non_negative_cp_hals(
    tensor: np.ndarray,
    rank: int,
    *,
    n_iter_max: int = 500,
    tol: float = 1e-6,
    inner_sweeps: int = 5,
    random_state: int | np.random.Generator | None = None,
    init: list[np.ndarray] | None = None,
) -> CPFit:
    """Non-negative CP of a 3-way tensor; NaN entries are missing (EM-imputed), not zeros.

    Stops when the relative error changes by less than ``tol`` between iterations (the criterion
    tensorly's ``non_negative_parafac`` uses) or after ``n_iter_max`` iterations.
    """
    if tensor.ndim != 3:
        raise ValueError("expected a 3-way tensor")
    rng = np.random.default_rng(random_state)
    observed = np.isfinite(tensor)
    has_missing = not observed.all()
    x = np.where(observed, tensor, 0.0).astype(np.float64)
    if (x < 0).any():
        raise ValueError("non-negative CP needs a non-negative tensor")
    norm_x = np.sqrt(np.sum(x**2))
    if norm_x == 0:
        raise ValueError("the tensor is all zero")
    if init is not None:
        factors = [np.array(f, dtype=np.float64) for f in init]
    else:
        # scale so the initial model has the data's magnitude
        scale = (
            (x[observed].mean() / rank) ** (1 / 3) if has_missing else (x.mean() / rank) ** (1 / 3)
        )
        factors = [rng.uniform(0.1, 1.0, (n, rank)) * scale for n in x.shape]
    mask = _factorized_mask(observed) if has_missing else None
    blocks = _worm_blocks(x, mask[0]) if mask is not None else None
    if has_missing and mask is None:  # general missingness: EM imputation
        x = np.where(observed, x, _reconstruct(factors))
    errors: list[float] = []
    n_iter = 0
    for n_iter in range(1, n_iter_max + 1):
        if mask is not None:
            residual = norm_x**2 + _masked_iteration(blocks, factors, *mask, inner_sweeps)
            errors.append(np.sqrt(max(residual, 0.0)) / norm_x)
            weights, unit = _normalize(factors)
            factors = [u * weights ** (1 / 3) for u in unit]
            if n_iter > 1 and abs(errors[-2] - errors[-1]) < tol:
                break
            continue
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
        residual = max(norm_x**2 - 2 * inner + model_sq, 0.0)
        if has_missing:
            model = _reconstruct(factors)
            residual = float(np.sum((x - model)[observed] ** 2))
            x = np.where(observed, x, model)
            norm_obs = np.sqrt(np.sum(x[observed] ** 2))
            errors.append(np.sqrt(residual) / norm_obs)
        else:
            errors.append(np.sqrt(residual) / norm_x)
        # rescale columns so no mode's norm runs away (keeps HALS well conditioned)
        weights, unit = _normalize(factors)
        root = weights ** (1 / 3)
        factors = [u * root for u in unit]
        if n_iter > 1 and abs(errors[-2] - errors[-1]) < tol:
            break
    weights, unit = _normalize(factors)
    final = float(
        np.sqrt(np.sum((tensor - np.einsum("r,pr,wr,mr->pwm", weights, *unit))[observed] ** 2))
        / np.sqrt(np.sum(tensor[observed] ** 2))
    )
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


@dataclass
class RankScan:
    ranks: list[int]
    errors: np.ndarray  # (rank, restart) relative errors
    similarity: np.ndarray  # (rank,) mean similarity to the best of the restarts near its error
    spread: np.ndarray  # (rank,) smallest worm spread among the best fit's components
    best: dict[int, CPFit]
    chosen: int


def select_rank(
    tensor: np.ndarray,
    ranks: list[int],
    *,
    restarts: int = 3,
    min_similarity: float = 0.8,
    min_gain: float = 0.02,
    error_margin: float = 1e-3,
    min_spread: float = 0.0,
    random_state: int = 0,
    **fit_kwargs,
) -> RankScan:
    """Fit ``restarts`` random starts per rank; choose the largest rank whose best fit

    - replicates: mean similarity to it of the other restarts whose relative error exceeds the
      best one's by at most ``error_margin`` is >= ``min_similarity`` (no such restart: the best
      basin was reached once, which is no evidence of replication, so the rank fails);
    - is shared across worms: every component's :func:`worm_spread` >= ``min_spread``;
    - and whose extra component still lowers the best error by at least ``min_gain`` of the
      drop from the smallest to the largest rank scanned.

    The smallest rank is the fallback when no larger one qualifies."""
    seeds = np.random.SeedSequence(random_state).spawn(len(ranks) * restarts)
    errors = np.zeros((len(ranks), restarts))
    similarity = np.zeros(len(ranks))
    spread = np.zeros(len(ranks))
    best: dict[int, CPFit] = {}
    from neurodag.progress import progress

    bar = progress(desc="NTF rank scan", total=len(ranks) * restarts, unit="fit")
    for k, rank in enumerate(ranks):
        fits = []
        for s in range(restarts):
            seed = np.random.default_rng(seeds[k * restarts + s])
            fits.append(non_negative_cp_hals(tensor, rank, random_state=seed, **fit_kwargs))
            bar.update()
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
    bar.close()
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
