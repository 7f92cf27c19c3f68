"""Representational dissimilarity matrices from trial responses.

Distances follow the conventions of rsatoolbox (Schuett et al., 2023) so that results are
comparable to the literature: squared Euclidean and squared Mahalanobis distances between
condition-mean patterns divided by the number of channels, correlation distance ``1 - r``, and
the cross-validated Mahalanobis ("crossnobis") distance of Walther et al. (2016, "Reliability of
dissimilarity measures for multi-voxel pattern analysis"): for each fold, the inner product of the
difference of held-out condition means with the difference of the other folds' means, averaged
over folds, so that noise does not bias it upward. Noise precision is the inverse of a
shrinkage covariance of the residuals: towards the diagonal (Schaefer & Strimmer, 2005) or towards
a multiple of the identity (Ledoit & Wolf, 2004).

Everything here is vectorised (one GEMM for the covariance and its squared counterpart; for
crossnobis, the precision applied once to all fold x condition sums, see ``_crossnobis``) instead
of looping over observations and folds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("euclidean", "correlation", "mahalanobis", "crossnobis")
SHRINKAGE = ("shrinkage_diag", "shrinkage_eye", "diag", "full")


def upper(rdm: np.ndarray) -> np.ndarray:
    """The strictly upper triangle of square RDM(s) (..., n, n) as vectors (..., n(n-1)/2)."""
    n = rdm.shape[-1]
    rows, cols = np.triu_indices(n, 1)
    return rdm[..., rows, cols]


def square(vector: np.ndarray) -> np.ndarray:
    """Inverse of :func:`upper`: symmetric RDM(s) with a zero diagonal."""
    vector = np.asarray(vector, dtype=float)
    m = vector.shape[-1]
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n * (n - 1) // 2 != m:
        raise ValueError(f"{m} is not the length of an RDM's upper triangle")
    out = np.zeros(vector.shape[:-1] + (n, n))
    rows, cols = np.triu_indices(n, 1)
    out[..., rows, cols] = vector
    out[..., cols, rows] = vector
    return out


def condition_means(patterns: np.ndarray, conditions: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique condition labels and the mean pattern (condition, channel) of each."""
    labels, index = np.unique(np.asarray(conditions), return_inverse=True)
    sums = np.zeros((len(labels), patterns.shape[1]))
    np.add.at(sums, index, patterns)
    return labels, sums / np.bincount(index)[:, None]


def _distances_from_gram(gram: np.ndarray) -> np.ndarray:
    """d_ij = g_ii + g_jj - g_ij - g_ji (also correct for a non-symmetric cross-fold kernel)."""
    diag = np.diag(gram)
    return diag[:, None] + diag[None, :] - gram - gram.T


def noise_covariance(
    residuals: np.ndarray, dof: int | None = None, method: str = "shrinkage_diag"
) -> np.ndarray:
    """Channel covariance of residuals (observation, channel), with optional shrinkage.

    ``shrinkage_diag`` shrinks the correlations towards 0 with the Schaefer & Strimmer (2005)
    optimal weight; ``shrinkage_eye`` shrinks towards a multiple of the identity (Ledoit & Wolf,
    2004); ``diag`` keeps the variances only; ``full`` is the sample covariance. ``dof`` defaults to
    observations - 1; pass observations - conditions for residuals from condition means.
    """
    if method not in SHRINKAGE:
        raise ValueError(f"unknown covariance method {method!r}; expected one of {SHRINKAGE}")
    x = np.asarray(residuals, dtype=float)
    x = x - x.mean(axis=0, keepdims=True)
    n_obs, n_channel = x.shape
    dof = n_obs - 1 if dof is None else dof
    sum_xx = x.T @ x
    if method == "full":
        return sum_xx / dof
    if method == "diag":
        return np.diag(np.diag(sum_xx) / dof)
    x2 = x * x
    sum_x2x2 = x2.T @ x2  # sum over observations of (x_i x_j)^2, as one GEMM
    if method == "shrinkage_eye":
        s = sum_xx / n_obs
        b2 = np.sum(sum_x2x2 / n_obs - s * s) / n_obs
        m = np.trace(s) / n_channel
        d2 = np.sum((s - m * np.eye(n_channel)) ** 2)
        b2 = min(d2, b2)
        shrunk = b2 / d2 * m * np.eye(n_channel) + (d2 - b2) / d2 * s
        return shrunk * n_obs / dof
    s = sum_xx / dof
    var = np.diag(s)
    std = np.sqrt(var)
    corr_mean = sum_xx / np.outer(std, std) / (n_obs - 1)
    corr2_mean = sum_x2x2 / np.outer(var, var) / (n_obs - 1)
    var_hat = n_obs / dof**2 * (corr2_mean - corr_mean**2)
    off = ~np.eye(n_channel, dtype=bool)
    shrinkage = np.clip(var_hat[off].sum() / (corr_mean[off] ** 2).sum(), 0.0, 1.0)
    return np.where(off, (1 - shrinkage) * s, s)


def noise_precision(
    residuals: np.ndarray, dof: int | None = None, method: str = "shrinkage_diag"
) -> np.ndarray:
    """Inverse of :func:`noise_covariance`."""
    return np.linalg.inv(noise_covariance(residuals, dof, method))


def residuals(patterns: np.ndarray, conditions: Sequence) -> tuple[np.ndarray, int]:
    """Trial patterns minus their condition mean, and the residual degrees of freedom."""
    labels, means = condition_means(patterns, conditions)
    index = np.searchsorted(labels, np.asarray(conditions))
    return patterns - means[index], patterns.shape[0] - len(labels)


def calc_rdm(
    patterns: np.ndarray,
    conditions: Sequence,
    method: str = "euclidean",
    *,
    precision: np.ndarray | None = None,
    folds: Sequence | None = None,
    remove_mean: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """RDM (condition, condition) of ``patterns`` (observation, channel) and the condition labels.

    Rows/columns are the sorted unique ``conditions``. ``precision`` (channel, channel) is the
    noise precision of Mahalanobis and crossnobis (identity if omitted). Crossnobis needs
    ``folds`` (one label per observation; leave-one-fold-out over its unique values).
    """
    patterns = np.asarray(patterns, dtype=float)
    if method not in METHODS:
        raise ValueError(f"unknown RDM method {method!r}; expected one of {METHODS}")
    n_channel = patterns.shape[1]
    if method == "crossnobis":
        if folds is None:
            raise ValueError("crossnobis needs folds (one cross-validation label per observation)")
        return _crossnobis(patterns, conditions, folds, precision, remove_mean)
    labels, means = condition_means(patterns, conditions)
    if remove_mean or method == "correlation":
        means = means - means.mean(axis=1, keepdims=True)
    if method == "correlation":
        unit = means / np.sqrt(np.einsum("ij,ij->i", means, means))[:, None]
        rdm = 1 - unit @ unit.T
        np.fill_diagonal(rdm, 0.0)
        return rdm, labels
    gram = means @ means.T if precision is None else means @ precision @ means.T
    return _distances_from_gram(gram) / n_channel, labels


def _cell_sums(patterns, cell, n_cell):
    """Sum of ``patterns`` rows per cell label in 0..n_cell-1, and the count per cell.

    Sorting rows by cell and reducing contiguous runs is far faster than ``np.add.at``."""
    counts = np.bincount(cell, minlength=n_cell)
    if (counts == 0).any():
        raise ValueError("crossnobis: every condition must occur in every fold")
    in_order = bool(np.all(cell[1:] >= cell[:-1]))
    rows = patterns if in_order else patterns[np.argsort(cell, kind="stable")]
    if len(rows) == n_cell:  # one observation per cell: the rows are the sums
        return rows, counts
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.add.reduceat(rows, starts, axis=0), counts


def _whiten(rows: np.ndarray, precision: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) with left @ right.T == rows @ precision @ rows.T.

    A positive-definite precision P = L L^T gives left = right = rows @ L: the Cholesky factor
    (n^3/3 multiply-adds for n channels) and a triangular product (rows x n^2/2) cost less than
    the dense product rows @ P (rows x n^2) once there are more than 2n/3 rows; otherwise, or for
    a singular precision, left = rows, right = rows @ P."""
    if precision is None:
        return rows, rows
    if 3 * rows.shape[0] < 2 * rows.shape[1]:
        return rows, rows @ precision
    from scipy.linalg.blas import dtrmm

    try:
        lower = np.linalg.cholesky(precision)
    except np.linalg.LinAlgError:
        return rows, rows @ precision
    # rows @ L as (L^T rows^T)^T: both operands are then Fortran-ordered views, no copies
    whitened = dtrmm(1.0, np.asfortranarray(lower.T), rows.T, side=0, lower=0).T
    return whitened, whitened


def _crossnobis(patterns, conditions, folds, precision, remove_mean):
    """Leave-one-fold-out crossnobis, as rsatoolbox's ``calc_rdm_crossnobis``.

    For fold k, test means m_k and training means t_k (over all observations of the other
    folds) give the cross kernel t_k P m_k^T; distances d_ij = K_ii + K_jj - K_ij - K_ji of the
    kernel averaged over folds, divided by the number of channels. With cell sums s_k (fold k,
    condition) and S = sum_k s_k, t_k = (S - s_k) / (n - n_k) row-wise, so every kernel comes from
    the whitened sums s_k L (P = L L^T) alone: the precision is applied once, to the
    (fold x condition) sums, and the training side of every fold follows by subtraction from the
    whitened total (sum_{l != k} s_l L = S L - s_k L), so the rest is O(folds) products of
    condition x condition size, never one per pair of folds.
    """
    labels, cond_index = np.unique(np.asarray(conditions), return_inverse=True)
    _, fold_index = np.unique(np.asarray(folds), return_inverse=True)
    n_cond, n_fold, n_channel = len(labels), fold_index.max() + 1, patterns.shape[1]
    sums, counts = _cell_sums(patterns, fold_index * n_cond + cond_index, n_fold * n_cond)
    if remove_mean:
        # Centring each pattern over channels is linear, so centring the cell sums centres every
        # test and training mean derived from them.
        sums = sums - sums.mean(axis=1, keepdims=True)
    left, right = _whiten(sums, precision)
    left = left.reshape(n_fold, n_cond, -1)
    right = right.reshape(n_fold, n_cond, -1)
    counts = counts.reshape(n_fold, n_cond)
    # (S - s_k) P s_k^T for every fold k, then the count normalisation of means
    cross = left.sum(axis=0) - left  # training sums of every fold, whitened
    kernels = cross @ right.transpose(0, 2, 1)
    kernels /= (counts.sum(axis=0) - counts)[:, :, None] * counts[:, None, :]
    # Distances are linear in the kernel, so average the kernels first.
    return _distances_from_gram(kernels.mean(axis=0)) / n_channel, labels
