"""Population-geometry measures of condition-mean response patterns.

- Participation ratio (Gao et al., 2017; Recanatesi et al., 2022): (sum lambda)^2 / sum lambda^2
  of the eigenvalues of the pattern covariance, an effective dimensionality.
- Linear CKA (Kornblith et al., 2019): ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on column-centred
  patterns of two populations over the same conditions.
- Parallelism score and cross-condition generalisation performance (CCGP) (Bernardi et al., 2020,
  "The geometry of abstraction in the hippocampus and prefrontal cortex") for factorised
  conditions: the cosine between coding directions of one binary factor measured at different
  values of the other factors, and the accuracy of a linear decoder of one factor trained on some
  values of the other factor and tested on the held-out values.
"""

from __future__ import annotations

import itertools

import numpy as np


def participation_ratio(patterns: np.ndarray) -> float:
    """Participation ratio of patterns (condition, neuron)."""
    centred = patterns - patterns.mean(axis=0)
    eigenvalues = np.linalg.svd(centred, compute_uv=False) ** 2
    total = eigenvalues.sum()
    return float(total**2 / np.sum(eigenvalues**2)) if total > 0 else 0.0


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between patterns x (condition, n1) and y (condition, n2)."""
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _binary(values: np.ndarray) -> np.ndarray:
    """A factor split at its median into two levels (0/1)."""
    values = np.asarray(values)
    levels = np.unique(values)
    if len(levels) == 2:
        return (values == levels[1]).astype(int)
    return (values > np.median(values)).astype(int)


def parallelism_score(patterns: np.ndarray, factor: np.ndarray, context: np.ndarray) -> float:
    """Mean cosine between the coding directions of binary ``factor`` in each ``context`` value.

    ``patterns`` (condition, neuron); a coding direction is the mean pattern at factor level 1
    minus at level 0, within one context value. Bernardi et al. take the maximum over pairings of
    conditions; with one direction per context the pairing is fixed.
    """
    factor = _binary(factor)
    directions = []
    for value in np.unique(context):
        inside = context == value
        if len(np.unique(factor[inside])) < 2:
            continue
        directions.append(
            patterns[inside & (factor == 1)].mean(axis=0)
            - patterns[inside & (factor == 0)].mean(axis=0)
        )
    if len(directions) < 2:
        return float("nan")
    unit = [d / np.linalg.norm(d) for d in directions]
    return float(np.mean([a @ b for a, b in itertools.combinations(unit, 2)]))


def ccgp(trials: np.ndarray, factor: np.ndarray, context: np.ndarray, ridge: float = 1.0) -> float:
    """Cross-condition generalisation of a linear decoder of binary ``factor``.

    ``trials`` (trial, neuron) with per-trial ``factor`` and ``context``. For every split of the
    context values into two halves, a ridge-regularised least-squares decoder is trained on the
    trials of one half and tested on the other; returns the mean accuracy.
    """
    factor = _binary(factor)
    values = np.unique(context)
    if len(values) < 2:
        return float("nan")
    x = trials - trials.mean(axis=0)
    x = x / np.maximum(x.std(axis=0), 1e-12)
    target = 2.0 * factor - 1.0
    accuracies = []
    for size in range(1, len(values) // 2 + 1):
        for train_values in itertools.combinations(values, size):
            train = np.isin(context, train_values)
            test = ~train
            if len(np.unique(factor[train])) < 2 or len(np.unique(factor[test])) < 2:
                continue
            a = x[train]
            weights = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ target[train])
            bias = np.mean(target[train] - a @ weights)
            predicted = np.sign(x[test] @ weights + bias)
            accuracies.append(np.mean(predicted == target[test]))
    return float(np.mean(accuracies)) if accuracies else float("nan")
