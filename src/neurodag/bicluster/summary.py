"""Posterior summaries for the bi-clustering MCMC (Wei et al.): co-clustering matrices, point
estimates maximising the posterior expected adjusted Rand index (Fritsch & Ickstadt 2009),
relabelling of cluster/state-specific draws to the point estimate, and ArviZ diagnostics.

Label switching: partitions are summarised through co-clustering matrices, which do not depend on
labels; draws of label-specific quantities (latent trajectories) are mapped to the point
estimate's clusters by the assignment (Hungarian) that maximises overlap, draw by draw.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import squareform


def coclustering(labels: np.ndarray) -> np.ndarray:
    """Posterior probability that items i and j share a label: labels (draws, items) -> (n, n)."""
    labels = np.asarray(labels)
    n_labels = int(labels.max()) + 1 if labels.size else 1
    out = np.zeros((labels.shape[1], labels.shape[1]))
    # sum over draws of onehot onehot': one matrix product per chunk of draws
    for start in range(0, len(labels), 256):
        chunk = labels[start : start + 256]
        onehot = (chunk[:, :, None] == np.arange(n_labels)).astype(np.float32)
        onehot = onehot.transpose(1, 0, 2).reshape(labels.shape[1], -1)
        out += onehot @ onehot.T
    return out / len(labels)


def expected_adjusted_rand(
    psm: np.ndarray, partition: np.ndarray, pairs: tuple | None = None, prob=None
) -> float:
    """Posterior expected adjusted Rand (PEAR) of a partition given the co-clustering matrix
    (``pairs``, the upper-triangle indices, and ``prob = psm[pairs]`` may be passed in when
    many partitions are scored against one matrix)."""
    iu = np.triu_indices(len(partition), 1) if pairs is None else pairs
    partition = np.asarray(partition)
    same = (partition[iu[0]] == partition[iu[1]]).astype(float)
    prob = psm[iu] if prob is None else prob
    n_pairs = iu[0].size
    sum_same, sum_prob = same.sum(), prob.sum()
    expected = sum_same * sum_prob / n_pairs
    top = (same * prob).sum() - expected
    bottom = 0.5 * (sum_same + sum_prob) - expected
    return float(top / bottom) if bottom > 0 else 1.0


def point_estimate(labels: np.ndarray, max_clusters: int = 20) -> np.ndarray:
    """The partition maximising PEAR among the sampled ones and the cuts of an average-linkage
    tree on 1 - co-clustering. Labels are 0..k-1 ordered by first appearance."""
    labels = np.asarray(labels)
    psm = coclustering(labels)
    candidates = [row for row in np.unique(labels, axis=0)[:200]]
    if len(psm) > 1:
        tree = linkage(squareform(1.0 - psm, checks=False), method="average")
        for k in range(1, min(max_clusters, len(psm)) + 1):
            candidates.append(fcluster(tree, k, criterion="maxclust"))
    pairs = np.triu_indices(len(psm), 1)
    prob = psm[pairs]
    scores = [expected_adjusted_rand(psm, c, pairs, prob) for c in candidates]
    return canonical_labels(candidates[int(np.argmax(scores))])


def canonical_labels(partition: np.ndarray) -> np.ndarray:
    _, first = np.unique(partition, return_index=True)
    order = np.argsort(first)
    mapping = {partition[first[j]]: i for i, j in enumerate(order)}
    return np.array([mapping[v] for v in partition])


def relabel_map(draw_labels: np.ndarray, reference: np.ndarray, n_slots: int) -> np.ndarray:
    """For one draw: slot -> reference label (or -1) maximising the overlap (Hungarian)."""
    n_ref = int(reference.max()) + 1
    overlap = np.zeros((n_slots, n_ref))
    np.add.at(overlap, (draw_labels, reference), 1.0)
    rows, cols = linear_sum_assignment(-overlap)
    out = np.full(n_slots, -1)
    out[rows] = cols
    return out


def relabelled_trajectories(
    draws_labels: np.ndarray, draws_h: np.ndarray, reference: np.ndarray
) -> np.ndarray:
    """Latent draws (draws, slots, T, d) reordered to the reference clusters: (draws, k, T, d),
    NaN where a draw has no cluster matched to a reference cluster."""
    n_ref = int(reference.max()) + 1
    out = np.full((len(draws_h), n_ref) + draws_h.shape[2:], np.nan)
    for i, (labels, h) in enumerate(zip(draws_labels, draws_h, strict=True)):
        mapping = relabel_map(labels, reference, h.shape[0])
        for slot, ref in enumerate(mapping):
            if ref >= 0 and (labels == slot).any():
                out[i, ref] = h[slot]
    return out


def diagnostics(chains: dict[str, np.ndarray]):
    """ArviZ InferenceData of the continuous, label-free quantities and their R-hat / ESS.

    ``chains`` maps a name to an array (chain, draw, ...). Returns (idata, rhat, ess) with rhat
    and ess xarray Datasets of the same variables.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

    idata = az.from_dict(posterior={k: np.asarray(v) for k, v in chains.items()})
    return idata, az.rhat(idata), az.ess(idata)


def pair_indicators(labels: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Co-clustering indicators 1[label_i == label_j] of the given item pairs, per draw:
    labels (..., items) -> (..., pairs), float. Label-free: the entries of the co-clustering
    matrix are their means."""
    labels = np.asarray(labels)
    return (labels[..., pairs[0]] == labels[..., pairs[1]]).astype(float)


def sorted_occupancy(states: np.ndarray, n_states: int) -> np.ndarray:
    """Fraction of bins in each state, sorted from the largest state down, per draw:
    states (..., T) -> (..., n_states). Label-free (the largest state's share, the second...)."""
    states = np.asarray(states)
    onehot = states[..., None] == np.arange(n_states)
    return -np.sort(-onehot.mean(axis=-2), axis=-1)


def convergence(chains: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Rank-normalised split R-hat and bulk ESS (Vehtari et al. 2021, as ArviZ computes them) of
    each quantity: name -> (chain, draw, ...) array; returns name -> (rhat, ess), each of shape
    (...).

    A quantity identical in every draw of every chain (a pair of neurons always together) has no
    sampling variation to diagnose: R-hat 1 and ESS NaN (left out of the worst ESS). One that is
    constant within each chain but differs between chains has not mixed at all: R-hat inf and
    ESS the number of chains.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az

        out = {}
        for name, values in chains.items():
            values = np.asarray(values, dtype=float)
            flat = values.reshape(values.shape[:2] + (-1,))
            rhat = np.full(flat.shape[-1], np.nan)
            ess = np.full(flat.shape[-1], np.nan)
            within = flat.std(axis=1).max(axis=0) > 0
            constant = ~within & (np.ptp(flat.mean(axis=1), axis=0) == 0)
            stuck = ~within & ~constant
            rhat[constant], rhat[stuck], ess[stuck] = 1.0, np.inf, flat.shape[0]
            if within.any():
                data = az.convert_to_dataset({"x": flat[..., within]})
                rhat[within] = az.rhat(data, method="rank")["x"].values
                ess[within] = az.ess(data, method="bulk")["x"].values
            out[name] = (rhat.reshape(values.shape[2:]), ess.reshape(values.shape[2:]))
    return out
