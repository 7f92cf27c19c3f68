"""Comparing RDMs: comparators, bootstrap, noise ceilings, identification over the (l, u) grid.

Comparators follow Nili et al. (2014, "A toolbox for representational similarity analysis") and
Diedrichsen et al. (2021, "Comparing representational geometries using whitened unbiased-distance-
matrix similarity"): Spearman correlation, Kendall's tau-a (ties count against the score, which
matters for categorical models), cosine, and the whitened unbiased cosine, the cosine after
whitening by the covariance V of unbiased distance estimates under i.i.d. noise. For n conditions
V = 2 I + B^T B with B the condition-by-pair incidence matrix, so V^-1 follows from an n x n solve
(Woodbury) instead of a pairs x pairs one.

Bootstrap (Schuett et al., 2023) resamples subjects and/or stimuli with replacement; pairs of a
stimulus with its own copy are dropped. The noise ceiling is the mean comparison of each subject's
RDM with the mean of the others (lower) and of all subjects (upper). Identification accuracy (Lin
& Kriegeskorte) assigns each held-out subject's RDM to the nearest class centroid of the other
subjects' RDMs, for every (l, u) of a GT grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import rankdata

from neurodag.geometry.rdm import square, upper
from neurodag.geometry.transforms import transform


def _pair_count(n_pairs: int) -> int:
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    if n * (n - 1) // 2 != n_pairs:
        raise ValueError(f"{n_pairs} is not the length of an RDM's upper triangle")
    return n


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity along the last axis (broadcasts); NaN where a vector is zero."""
    norm = np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(a * b, axis=-1) / norm


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    return cosine(a, b)


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return pearson(rankdata(a, axis=-1), rankdata(b, axis=-1))


def _tied_pairs(x: np.ndarray) -> float:
    counts = np.unique(x, return_counts=True)[1].astype(float)
    return float(np.sum(counts * (counts - 1) / 2))


def kendall_tau_a(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-a: (concordant - discordant) / all pairs; ties count as neither.

    O(n log n): scipy's tau-b is (C - D) / sqrt((n0 - n1)(n0 - n2)) with n1, n2 the pairs tied in
    each vector, so C - D follows from it and the tie counts.
    """
    from scipy.stats import kendalltau

    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    flat_a, flat_b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    n = a.shape[-1]
    all_pairs = n * (n - 1) / 2
    out = np.empty(len(flat_a))
    for k, (x, y) in enumerate(zip(flat_a, flat_b, strict=True)):
        untied = (all_pairs - _tied_pairs(x)) * (all_pairs - _tied_pairs(y))
        if untied == 0:  # a constant vector: every pair tied
            out[k] = 0.0
            continue
        out[k] = kendalltau(x, y).statistic * np.sqrt(untied) / all_pairs
    return out.reshape(a.shape[:-1])


def whiten(vectors: np.ndarray) -> np.ndarray:
    """V^-1 x for RDM vectors x (last axis), V = 2 I + B^T B (Woodbury through an n x n solve)."""
    vectors = np.asarray(vectors, dtype=float)
    n = _pair_count(vectors.shape[-1])
    per_condition = square(vectors).sum(axis=-1)  # B x: sum over the pairs of each condition
    inner = (n - 2) * np.eye(n) + np.ones((n, n)) + 2 * np.eye(n)  # 2 I + B B^T
    y = np.linalg.solve(inner, per_condition[..., None])[..., 0]
    back = upper(y[..., :, None] + y[..., None, :])  # B^T y
    return (vectors - back) / 2.0


def whitened_unbiased_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a^T V^-1 b / sqrt(a^T V^-1 a  b^T V^-1 b)."""
    wa, wb = whiten(a), whiten(b)
    return np.sum(a * wb, axis=-1) / np.sqrt(np.sum(a * wa, axis=-1) * np.sum(b * wb, axis=-1))


COMPARATORS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "spearman": spearman,
    "kendall_tau_a": kendall_tau_a,
    "cosine": cosine,
    "whitened_cosine": whitened_unbiased_cosine,
    "pearson": pearson,
}


def compare(a: np.ndarray, b: np.ndarray, method: str = "spearman") -> np.ndarray:
    if method not in COMPARATORS:
        raise ValueError(f"unknown comparator {method!r}; expected one of {list(COMPARATORS)}")
    return COMPARATORS[method](np.asarray(a, float), np.asarray(b, float))


def _subset(vectors: np.ndarray, stimuli: np.ndarray) -> np.ndarray:
    """RDM vectors restricted to a resample of stimuli, dropping pairs of a stimulus with itself."""
    full = square(vectors)[..., stimuli[:, None], stimuli[None, :]]
    rows, cols = np.triu_indices(len(stimuli), 1)
    keep = stimuli[rows] != stimuli[cols]
    return full[..., rows[keep], cols[keep]]


def evaluate_models(
    data: np.ndarray,
    models: np.ndarray,
    method: str = "spearman",
    *,
    n_bootstrap: int = 100,
    resample: str = "both",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Mean comparison of each model with the subjects' RDMs, with bootstrap and noise ceiling.

    ``data`` (subject, pair), ``models`` (model, pair). Returns ``score(model)`` (mean over
    subjects), ``bootstrap(sample, model)``, ``ceiling_lower``/``ceiling_upper`` and their bootstrap
    samples. ``resample`` is ``subjects``, ``stimuli`` or ``both``.
    """
    if resample not in ("subjects", "stimuli", "both"):
        raise ValueError(f"resample must be subjects, stimuli or both, got {resample!r}")
    rng = np.random.default_rng(seed)
    n_subject = data.shape[0]
    n_stim = _pair_count(data.shape[-1])

    def scores(d, m):
        per_subject = compare(d[:, None, :], m[None, :, :], method)  # (subject, model)
        return per_subject.mean(axis=0)

    def ceilings(d):
        total = d.mean(axis=0)
        upper_ = compare(d, total[None], method).mean()
        if len(d) < 2:
            return np.nan, upper_
        others = (total[None] * len(d) - d) / (len(d) - 1)
        return compare(d, others, method).mean(), upper_

    score = scores(data, models)
    lower, upper_ = ceilings(data)
    boot, boot_lower, boot_upper = [], [], []
    for _ in range(n_bootstrap):
        d, m = data, models
        if resample in ("subjects", "both"):
            d = d[rng.integers(0, n_subject, n_subject)]
        if resample in ("stimuli", "both"):
            stimuli = np.sort(rng.integers(0, n_stim, n_stim))
            d, m = _subset(d, stimuli), _subset(m, stimuli)
        boot.append(scores(d, m))
        lo, hi = ceilings(d)
        boot_lower.append(lo)
        boot_upper.append(hi)
    return {
        "score": score,
        "bootstrap": np.array(boot),
        "ceiling_lower": np.float64(lower),
        "ceiling_upper": np.float64(upper_),
        "bootstrap_ceiling_lower": np.array(boot_lower),
        "bootstrap_ceiling_upper": np.array(boot_upper),
    }


def _centroid_similarity(test: np.ndarray, centroids: np.ndarray, method: str) -> np.ndarray:
    """(test, class) similarity of transformed RDMs to class centroids.

    ``euclidean`` is minus the Euclidean distance, i.e. the nearest-centroid rule of the paper's
    own code (scikit-learn's ``NearestCentroid``); any comparator of :data:`COMPARATORS` is used
    as a similarity. A constant transformed RDM (e.g. l = u = 1) has no correlation with
    anything: NaN similarities never win."""
    if method == "euclidean":
        return -np.sqrt(np.sum((test[:, None] - centroids[None]) ** 2, axis=-1))
    return np.nan_to_num(compare(test[:, None], centroids[None], method), nan=-np.inf)


def identification_accuracy(
    vectors: np.ndarray,
    labels: Sequence,
    subjects: Sequence,
    *,
    kind: str = "gt",
    low: float = 0.0,
    up: float = 1.0,
    method: str = "spearman",
) -> float:
    """Leave-one-subject-out nearest-centroid identification of ``labels`` from transformed RDMs.

    ``vectors`` (rdm, pair) with a class label (region or model) and a subject for every RDM.
    Each held-out subject's RDMs are transformed and assigned to the most similar centroid of the
    other subjects' transformed RDMs of each class: by a comparator (``method``, default Spearman)
    or, with ``method="euclidean"``, by Euclidean distance as in the paper's own code.
    """
    labels, subjects = np.asarray(labels), np.asarray(subjects)
    transformed = transform(vectors, kind, low, up)
    classes = np.unique(labels)
    correct, total = 0, 0
    for subject in np.unique(subjects):
        test, train = subjects == subject, subjects != subject
        known = np.array([np.any(train & (labels == c)) for c in classes])
        centroids = np.stack(
            [transformed[train & (labels == c)].mean(axis=0) for c in classes[known]]
        )
        similarity = _centroid_similarity(transformed[test], centroids, method)
        predicted = classes[known][np.argmax(similarity, axis=1)]
        correct += int(np.sum(predicted == labels[test]))
        total += int(test.sum())
    return correct / total


def identification_grid(
    vectors: np.ndarray,
    labels: Sequence,
    subjects: Sequence,
    grid: Sequence[float],
    *,
    kind: str = "gt",
    method: str = "spearman",
) -> np.ndarray:
    """Identification accuracy (low, up) over ``grid`` x ``grid``; NaN where low > up."""
    out = np.full((len(grid), len(grid)), np.nan)
    for i, low in enumerate(grid):
        for j, up in enumerate(grid):
            if low <= up:
                out[i, j] = identification_accuracy(
                    vectors, labels, subjects, kind=kind, low=low, up=up, method=method
                )
    return out


def identification_accuracy_nested(
    vectors: np.ndarray,
    labels: Sequence,
    subjects: Sequence,
    grid: Sequence[float],
    *,
    kind: str = "gt",
    method: str = "spearman",
) -> float:
    """Identification accuracy with (l, u) chosen without the test subject.

    For every held-out subject, (l, u) is the grid setting with the best leave-one-subject-out
    accuracy among the other subjects (ties: the widest ramp, then the lowest l), and the held-out
    subject's RDMs are then classified with centroids of the other subjects' RDMs. Unlike the
    maximum of :func:`identification_grid`, this is an unbiased estimate of a tuned GT's accuracy.
    """
    labels, subjects = np.asarray(labels), np.asarray(subjects)
    settings = [(low, up) for low in grid for up in grid if low <= up]
    correct, total = 0, 0
    for subject in np.unique(subjects):
        train = subjects != subject
        inner = [
            identification_accuracy(
                vectors[train],
                labels[train],
                subjects[train],
                kind=kind,
                low=low,
                up=up,
                method=method,
            )
            for low, up in settings
        ]
        # ties: the widest ramp (closest to the raw RDM), then the lowest l
        best = [k for k, score in enumerate(inner) if score == max(inner)]
        low, up = min((settings[k] for k in best), key=lambda lu: (lu[0] - lu[1], lu[0]))
        transformed = transform(vectors, kind, low, up)
        classes = np.unique(labels[train])
        centroids = np.stack([transformed[train & (labels == c)].mean(axis=0) for c in classes])
        test = ~train
        similarity = _centroid_similarity(transformed[test], centroids, method)
        correct += int(np.sum(classes[np.argmax(similarity, axis=1)] == labels[test]))
        total += int(test.sum())
    return correct / total
