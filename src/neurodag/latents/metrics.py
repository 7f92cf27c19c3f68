"""Neural Latents Benchmark metrics (Pei et al. 2021, NLB'21; ``nlb_tools.evaluation``).

All arrays are laid out ``(trial, time, neuron)``; rates are *expected counts per bin*.

- ``bits_per_spike``: Poisson log-likelihood of the spikes under the model rates minus that under
  each neuron's mean rate over the evaluated data, in bits, divided by the number of spikes.
  co-bps is this on held-out neurons in the held-in window; fp-bps on all neurons in the
  forward-prediction window.
- ``psth_r2``: R2 between condition-averaged predicted rates and the true (or empirical) PSTH, each
  neuron's R2 over condition x time, averaged over neurons (scikit-learn's ``uniform_average``).
- ``velocity_r2``: ridge regression from rates to behaviour fitted on training trials, R2 on the
  evaluation trials, variance-weighted over behaviour dimensions as NLB does.
- ``rate_r2``: R2 of inferred to true rates, per neuron over trial x time, averaged over neurons.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln


def poisson_log_likelihood(rates: np.ndarray, spikes: np.ndarray) -> float:
    """Sum over bins of log Poisson(spikes | rates); NaN spikes are skipped."""
    rates = np.asarray(rates, dtype=float)
    spikes = np.asarray(spikes, dtype=float)
    keep = ~np.isnan(spikes)
    r, k = rates[keep], spikes[keep]
    if np.any(r <= 0):
        r = np.maximum(r, 1e-9)  # as NLB: a zero rate under a spike would give -inf
    return float(np.sum(k * np.log(r) - r - gammaln(k + 1)))


def bits_per_spike(rates: np.ndarray, spikes: np.ndarray) -> float:
    """NLB bits per spike of ``rates`` against the per-neuron mean-rate null model."""
    spikes = np.asarray(spikes, dtype=float)
    null = np.broadcast_to(np.nanmean(spikes, axis=(0, 1), keepdims=True), spikes.shape)
    total = np.nansum(spikes)
    if total == 0:
        return float("nan")
    gain = poisson_log_likelihood(rates, spikes) - poisson_log_likelihood(null, spikes)
    return gain / total / np.log(2)


def r2_columns(true: np.ndarray, pred: np.ndarray, weighting: str = "uniform") -> float:
    """R2 of each column of ``(samples, columns)`` arrays, averaged ``uniform`` or by variance."""
    true = np.asarray(true, dtype=float)
    pred = np.asarray(pred, dtype=float)
    residual = np.sum((true - pred) ** 2, axis=0)
    total = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    if weighting == "variance":
        return float(1.0 - residual.sum() / total.sum())
    keep = total > 0  # a constant column has no defined R2 (sklearn scores it 1 or 0; we skip it)
    return float(np.mean(1.0 - residual[keep] / total[keep]))


def rate_r2(pred_rates: np.ndarray, true_rates: np.ndarray) -> float:
    """R2 of inferred to true rates: per neuron over trial x time, averaged over neurons."""
    n = true_rates.shape[-1]
    return r2_columns(true_rates.reshape(-1, n), pred_rates.reshape(-1, n))


def psth_r2(pred_rates: np.ndarray, true_psth: np.ndarray, condition: np.ndarray) -> float:
    """NLB PSTH R2. ``true_psth`` is ``(condition, time, neuron)`` in the order of
    ``np.unique(condition)``; predictions are averaged over each condition's trials."""
    conditions = np.unique(condition)
    pred_psth = np.stack([pred_rates[condition == c].mean(axis=0) for c in conditions])
    n = pred_rates.shape[-1]
    return r2_columns(true_psth.reshape(-1, n), pred_psth.reshape(-1, n))


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept: returns (weights, intercept)."""
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    weights = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    return weights, y_mean - x_mean @ weights


def velocity_r2(
    train_rates: np.ndarray,
    train_velocity: np.ndarray,
    eval_rates: np.ndarray,
    eval_velocity: np.ndarray,
    alphas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),
    folds: int = 5,
) -> float:
    """NLB velocity decoding: ridge from rates to velocity, alpha by k-fold CV on training trials,
    variance-weighted R2 on the evaluation trials. Rates ``(trial, time, neuron)``, velocity
    ``(trial, time, dim)``."""
    xs = train_rates.reshape(-1, train_rates.shape[-1])
    ys = train_velocity.reshape(-1, train_velocity.shape[-1])
    # Folds over whole trials, so neighbouring bins never sit on both sides of a split.
    trial_fold = np.arange(train_rates.shape[0]) % folds
    sample_fold = np.repeat(trial_fold, train_rates.shape[1])
    best_alpha, best_score = alphas[0], -np.inf
    for alpha in alphas:
        scores = []
        for f in range(min(folds, train_rates.shape[0])):
            fit, held = sample_fold != f, sample_fold == f
            w, b = fit_ridge(xs[fit], ys[fit], alpha)
            scores.append(r2_columns(ys[held], xs[held] @ w + b, "variance"))
        if np.mean(scores) > best_score:
            best_alpha, best_score = alpha, float(np.mean(scores))
    w, b = fit_ridge(xs, ys, best_alpha)
    xe = eval_rates.reshape(-1, eval_rates.shape[-1])
    ye = eval_velocity.reshape(-1, eval_velocity.shape[-1])
    return r2_columns(ye, xe @ w + b, "variance")
