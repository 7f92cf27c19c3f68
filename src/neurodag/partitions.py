"""Agreement of two partitions (found clusters vs planted truth), for every stage's validation."""

from __future__ import annotations

import numpy as np


def nmi(truth, found) -> float:
    """Normalized mutual information of two labelings, normalised by the arithmetic mean of the
    entropies (Danon et al. 2005; scikit-learn's default). 1 for identical partitions up to
    renaming; 1 as well when both are a single block."""
    truth, found = np.asarray(truth), np.asarray(found)
    _, a = np.unique(truth, return_inverse=True)
    _, b = np.unique(found, return_inverse=True)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    joint /= joint.sum()
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mutual = np.sum(joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz]))
    ha = -np.sum(pa[pa > 0] * np.log(pa[pa > 0]))
    hb = -np.sum(pb[pb > 0] * np.log(pb[pb > 0]))
    if ha == 0 and hb == 0:
        return 1.0
    return float(max(mutual, 0.0) / (0.5 * (ha + hb)))


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two partitions (Hubert & Arabie 1985)."""
    _, a = np.unique(np.asarray(a), return_inverse=True)
    _, b = np.unique(np.asarray(b), return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1.0)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    index = pairs(table)
    rows, cols, total = pairs(table.sum(1)), pairs(table.sum(0)), pairs(np.array([a.size]))
    expected = rows * cols / total if total else 0.0
    top = index - expected
    bottom = 0.5 * (rows + cols) - expected
    return float(top / bottom) if bottom else 1.0
