"""Neural Latents Benchmark metrics, computed as the benchmark's own code computes them.

Reference: Pei et al. 2021, "Neural Latents Benchmark '21" (NeurIPS Datasets and Benchmarks), and
its evaluation code ``nlb_tools.evaluation`` (PyPI ``nlb-tools`` 0.0.4). The tests compare every
function here with ``nlb_tools`` on the same arrays, to 1e-9. Arrays are ``(trial, time, neuron)``
and rates are *expected counts per bin*. The rules taken, each with its source in nlb_tools:

Bits per spike (``bits_per_spike``; nlb ``bits_per_spike`` and ``neg_log_likelihood``)
  - ``rates`` and ``spikes`` must have the same shape. Bins whose spike count is NaN are left out
    (their rates may be anything); the remaining rates must not be NaN or negative, else an
    :class:`~neurodag.errors.InputError` naming ``rates`` (nlb asserts the same).
  - A rate of exactly 0 is replaced by 1e-9 (so a zero rate under a spike costs about
    20.7 nats per spike instead of an infinite penalty).
  - Negative log-likelihood ``sum(r - k log r + lgamma(k + 1))``; the null model predicts each
    neuron's mean count over all non-NaN bins of the evaluated array (a silent neuron's null rate 0
    becomes 1e-9 as above). bits/spike = (NLL_null - NLL_model) / sum(k) / ln 2.
  - co-bps is this on held-out neurons in held-in bins, fp-bps on all neurons in forward bins
    (nlb ``evaluate``). One difference: with no spikes at all nlb divides by zero (inf or NaN with a
    warning); here the score is NaN.

R2 (``r2_columns``; scikit-learn ``r2_score``, which nlb calls)
  - Per column ``1 - SS_res / SS_tot``, averaged uniformly over columns. A constant true column
    (SS_tot = 0) scores 1 if predicted exactly, else 0 (scikit-learn's ``force_finite``); such
    columns are in the average, not skipped. Fewer than two rows give NaN.

PSTH R2 (``psth_r2``, ``condition_groups``, ``condition_psth``; nlb ``eval_psth`` and
``make_tensors._make_psth``)
  - Conditions are the sorted unique values of the condition variable over all trials; trials with
    a missing (NaN/None) condition belong to none. The PSTH of a condition is the mean smoothed
    activity of all its trials (training and evaluation alike).
  - The predicted PSTH is the mean of the predicted rates over the condition's evaluation trials; a
    condition with no evaluation trial is skipped. Time bins where the true PSTH of the first
    neuron is NaN are dropped for that condition; predictions left must not be NaN.
  - All conditions' (time, neuron) rows are stacked and scored with R2 over neurons, uniform
    average. (nlb's per-trial jitter, used only for DMFC-RSG, is not supported.)

Velocity R2 (``velocity_r2``, ``decoder_r2``; nlb ``velocity_decoding`` and
``fit_and_eval_decoder``)
  - Rates and velocity are flattened to (trial x time) rows. Rows whose *first* velocity dimension
    is NaN are dropped, in training and evaluation; rates left must not be NaN.
  - Ridge regression with an unpenalised intercept (scikit-learn ``Ridge``), alpha chosen from
    ``logspace(-4, 0, 9)`` by 5-fold cross-validation on the training rows: contiguous,
    unshuffled folds of sizes ``n // 5`` (+1 for the first ``n % 5``), scored by R2, the alpha of
    highest mean score winning, the first on ties (scikit-learn ``GridSearchCV`` with its default
    ``KFold``); refitted on all training rows, then R2 on the evaluation rows, uniform over
    velocity dimensions (``Ridge.score``).
  - With decode masks (columns of boolean ``(trial, mask)`` arrays) one decoder per mask and the
    R2s averaged.

``rate_r2`` (R2 of inferred to true rates, per neuron over trial x time, uniform over neurons) is
not an NLB metric; it uses the same R2 rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gammaln

from neurodag.errors import InputError

#: Ridge penalties searched by the velocity decoder (nlb ``fit_and_eval_decoder``).
NLB_ALPHAS = tuple(float(a) for a in np.logspace(-4, 0, 9))
#: Cross-validation folds of that search (scikit-learn ``GridSearchCV`` default).
NLB_FOLDS = 5
#: What a zero predicted rate becomes (nlb ``neg_log_likelihood``).
ZERO_RATE = 1e-9


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise InputError(None, name_a, f"shape {a.shape} differs from {name_b} {b.shape}")


def _check_rates(rates: np.ndarray, name: str) -> None:
    if np.isnan(rates).any():
        raise InputError(
            None, name, f"{int(np.isnan(rates).sum())} NaN rate predictions where spikes are valid"
        )
    if (rates < 0).any():
        raise InputError(None, name, f"{int((rates < 0).sum())} negative rate predictions")


def poisson_nll(rates: np.ndarray, spikes: np.ndarray, name: str = "rates") -> float:
    """Poisson negative log-likelihood summed over the bins with a spike count (nlb
    ``neg_log_likelihood``): NaN spikes skipped, zero rates set to 1e-9, NaN or negative rates
    refused."""
    rates = np.asarray(rates, dtype=float)
    spikes = np.asarray(spikes, dtype=float)
    _same_shape(rates, spikes, name, "spikes")
    keep = ~np.isnan(spikes)
    r, k = rates[keep], spikes[keep]
    _check_rates(r, name)
    r = np.where(r == 0, ZERO_RATE, r)
    return float(np.sum(r - k * np.log(r) + gammaln(k + 1.0)))


def poisson_log_likelihood(rates: np.ndarray, spikes: np.ndarray) -> float:
    """Sum over bins of log Poisson(spikes | rates), with the rules of :func:`poisson_nll`."""
    return -poisson_nll(rates, spikes)


def bits_per_spike(rates: np.ndarray, spikes: np.ndarray, name: str = "rates") -> float:
    """NLB bits per spike of ``rates`` against the per-neuron mean-count null model."""
    spikes = np.asarray(spikes, dtype=float)
    nll_model = poisson_nll(rates, spikes, name)
    total = np.nansum(spikes)
    if total == 0:
        return float("nan")
    axes = tuple(range(spikes.ndim - 1))
    null = np.tile(np.nanmean(spikes, axis=axes, keepdims=True), spikes.shape[:-1] + (1,))
    nll_null = poisson_nll(null, spikes, "null rates")
    return float((nll_null - nll_model) / total / np.log(2))


def r2_columns(true: np.ndarray, pred: np.ndarray) -> float:
    """R2 of each column of ``(samples, columns)`` arrays, averaged uniformly (scikit-learn's
    ``r2_score``: a constant true column scores 1 if matched exactly, else 0)."""
    true = np.asarray(true, dtype=float)
    pred = np.asarray(pred, dtype=float)
    if true.ndim == 1:
        true, pred = true[:, None], pred[:, None]
    _same_shape(pred, true, "predictions", "truth")
    if true.shape[0] < 2:
        return float("nan")
    residual = np.sum((true - pred) ** 2, axis=0)
    total = np.sum((true - np.mean(true, axis=0)) ** 2, axis=0)
    scores = np.ones(true.shape[1])
    valid = (total != 0) & (residual != 0)
    scores[valid] = 1 - residual[valid] / total[valid]
    scores[(residual != 0) & (total == 0)] = 0.0
    return float(np.mean(scores))


def rate_r2(pred_rates: np.ndarray, true_rates: np.ndarray) -> float:
    """R2 of inferred to true rates: per neuron over trial x time, averaged over neurons."""
    n = true_rates.shape[-1]
    return r2_columns(true_rates.reshape(-1, n), pred_rates.reshape(-1, n))


def condition_groups(condition: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The conditions as NLB forms them (sorted unique values, missing ones dropped) and the trial
    indices of each."""
    condition = np.asarray(condition)
    present = ~pd.isna(condition)
    labels = np.unique(condition[present])
    return labels, [np.flatnonzero(present & (condition == c)) for c in labels]


def condition_psth(activity: np.ndarray, condition: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, psth)``: the mean of ``activity(trial, time, neuron)`` over each condition's
    trials, ``psth(condition, time, neuron)`` in the order of ``labels``."""
    activity = np.asarray(activity, dtype=float)
    if len(condition) != activity.shape[0]:
        raise InputError(
            None, "condition", f"{len(condition)} values for {activity.shape[0]} trials"
        )
    labels, groups = condition_groups(condition)
    if not groups:
        raise InputError(None, "condition", "no trial has a condition")
    return labels, np.stack([activity[g].mean(axis=0) for g in groups])


def psth_r2(
    pred_rates: np.ndarray,
    true_psth: np.ndarray,
    condition: np.ndarray,
    conditions: np.ndarray | None = None,
) -> float:
    """NLB PSTH R2 of the evaluation trials' predicted rates ``(trial, time, neuron)``.

    ``true_psth(condition, time, neuron)`` is in the order of ``conditions`` (default: the
    conditions formed from ``condition``, the evaluation trials' labels); conditions without an
    evaluation trial are skipped, as are time bins where the first neuron's true PSTH is NaN.
    """
    pred_rates = np.asarray(pred_rates, dtype=float)
    true_psth = np.asarray(true_psth, dtype=float)
    if len(condition) != pred_rates.shape[0]:
        raise InputError(
            None, "condition", f"{len(condition)} values for {pred_rates.shape[0]} trials"
        )
    labels = condition_groups(condition)[0] if conditions is None else np.asarray(conditions)
    if true_psth.ndim != 3 or true_psth.shape[0] != len(labels):
        raise InputError(
            None, "true_psth", f"shape {true_psth.shape}, expected ({len(labels)}, time, neuron)"
        )
    if true_psth.shape[1:] != pred_rates.shape[1:]:
        raise InputError(
            None,
            "pred_rates",
            f"(time, neuron) {pred_rates.shape[1:]} differs from true_psth {true_psth.shape[1:]}",
        )
    condition = np.asarray(condition)
    trues, preds = [], []
    for label, psth in zip(labels, true_psth, strict=True):
        members = ~pd.isna(condition) & (condition == label)
        if not members.any():
            continue
        kept = ~np.isnan(psth[:, 0])
        pred = pred_rates[members].mean(axis=0)[kept]
        if np.isnan(pred).any():
            raise InputError(None, "pred_rates", f"NaN predictions for condition {label!r}")
        trues.append(psth[kept])
        preds.append(pred)
    if not trues:
        raise InputError(None, "condition", "no evaluation trial belongs to a PSTH condition")
    true, pred = np.vstack(trues), np.vstack(preds)
    if np.isnan(true).any():
        raise InputError(None, "true_psth", "NaN where the first neuron's PSTH is defined")
    return r2_columns(true, pred)


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept: returns (weights, intercept)."""
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    weights = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    return weights, y_mean - x_mean @ weights


def kfold_slices(n: int, folds: int) -> list[slice]:
    """Contiguous unshuffled folds, the first ``n % folds`` one row longer (scikit-learn KFold)."""
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    stops = np.cumsum(sizes)
    return [slice(int(stop - size), int(stop)) for stop, size in zip(stops, sizes, strict=True)]


def _rows(rates: np.ndarray, behaviour: np.ndarray, which: str) -> tuple[np.ndarray, np.ndarray]:
    """Flattened (rows, columns) rates and behaviour, rows with NaN first behaviour dropped."""
    rates = np.asarray(rates, dtype=float)
    behaviour = np.asarray(behaviour, dtype=float)
    if rates.shape[:-1] != behaviour.shape[:-1]:
        raise InputError(
            None,
            f"{which}_rates",
            f"shape {rates.shape} does not match {which}_velocity {behaviour.shape}",
        )
    x = rates.reshape(-1, rates.shape[-1])
    y = behaviour.reshape(-1, behaviour.shape[-1])
    keep = ~np.isnan(y[:, 0])
    x, y = x[keep], y[keep]
    if np.isnan(x).any():
        raise InputError(None, f"{which}_rates", "NaN rate predictions where behaviour is valid")
    if np.isnan(y).any():
        raise InputError(None, f"{which}_velocity", "NaN in a dimension other than the first")
    return x, y


def decoder_r2(
    train_rates: np.ndarray,
    train_behaviour: np.ndarray,
    eval_rates: np.ndarray,
    eval_behaviour: np.ndarray,
    grid_search: bool = True,
) -> float:
    """nlb ``fit_and_eval_decoder``: ridge from rates to behaviour, R2 on the evaluation rows."""
    xs, ys = _rows(train_rates, train_behaviour, "train")
    xe, ye = _rows(eval_rates, eval_behaviour, "eval")
    if grid_search:
        if len(xs) < NLB_FOLDS:
            raise InputError(None, "train_rates", f"{len(xs)} valid rows, fewer than the folds")
        folds = kfold_slices(len(xs), NLB_FOLDS)
        best_alpha, best_score = NLB_ALPHAS[0], -np.inf
        for alpha in NLB_ALPHAS:
            scores = []
            for held in folds:
                fit = np.ones(len(xs), dtype=bool)
                fit[held] = False
                w, b = fit_ridge(xs[fit], ys[fit], alpha)
                scores.append(r2_columns(ys[held], xs[held] @ w + b))
            score = float(np.mean(scores))
            if score > best_score:
                best_alpha, best_score = alpha, score
    else:
        best_alpha = 1e-2
    w, b = fit_ridge(xs, ys, best_alpha)
    return r2_columns(ye, xe @ w + b)


def velocity_r2(
    train_rates: np.ndarray,
    train_velocity: np.ndarray,
    eval_rates: np.ndarray,
    eval_velocity: np.ndarray,
    train_decode_mask: np.ndarray | None = None,
    eval_decode_mask: np.ndarray | None = None,
) -> float:
    """NLB velocity decoding (nlb ``velocity_decoding``): rates ``(trial, time, neuron)`` and
    velocity ``(trial, time, dim)``; one ridge decoder per decode mask, R2s averaged."""
    if train_decode_mask is None:
        train_decode_mask = np.ones((len(train_rates), 1), dtype=bool)
    if eval_decode_mask is None:
        eval_decode_mask = np.ones((len(eval_rates), 1), dtype=bool)
    train_decode_mask = np.asarray(train_decode_mask, dtype=bool)
    eval_decode_mask = np.asarray(eval_decode_mask, dtype=bool)
    if train_decode_mask.shape[1] != eval_decode_mask.shape[1]:
        raise InputError(None, "eval_decode_mask", "not as many masks as train_decode_mask")
    train_rates, train_velocity = np.asarray(train_rates), np.asarray(train_velocity)
    eval_rates, eval_velocity = np.asarray(eval_rates), np.asarray(eval_velocity)
    return float(
        np.mean(
            [
                decoder_r2(
                    train_rates[tm],
                    train_velocity[tm],
                    eval_rates[em],
                    eval_velocity[em],
                )
                for tm, em in zip(train_decode_mask.T, eval_decode_mask.T, strict=True)
            ]
        )
    )
