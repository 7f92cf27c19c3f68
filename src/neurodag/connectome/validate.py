"""Agreement of a dynamic connectome with a simulation's planted epochs and groups.

``truth`` is ``neurodag simulate celegans``'s ``truth.nc``: ``group_member(group, neuron)``,
``group_active(epoch, group)``, ``epoch_start/epoch_stop(epoch)``. Each stimulus epoch (one with
an active group) gives an indicator over the analysis windows: the fraction of the window inside
the epoch. Components are matched one-to-one to these epochs by the Pearson correlation of their
time factor with the indicator (Hungarian assignment); the worms' drives differ from epoch to
epoch, so the affinity tensor has one pattern per epoch rather than one per group.

For a matched component, the planted partition labels each neuron with the group driven in that
epoch (neurons of no active group: "none"). The recovered partition keeps the component's
*assortative* communities (blocks whose within-block mean weight exceeds their mean weight to
every other block, i.e. communities in the usual sense) and merges the other blocks into "none".
NMI is measured over the analysed neurons, per epoch, for the SBM and for Louvain.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from neurodag.partitions import nmi


def epoch_indicator(truth: xr.Dataset, window_time: np.ndarray, window_s: float) -> np.ndarray:
    """(epoch, window): fraction of each window inside each epoch."""
    starts, stops = truth["epoch_start"].values, truth["epoch_stop"].values
    lo, hi = window_time - window_s / 2, window_time + window_s / 2
    overlap = np.clip(
        np.minimum(hi[None], stops[:, None]) - np.maximum(lo[None], starts[:, None]), 0, None
    )
    return overlap / window_s


def assortative_labels(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Blocks that are communities (within mean > mean to each other block) keep their label;
    the others become -1."""
    blocks = np.unique(labels)
    w = np.where(np.isfinite(weights), weights, np.nan)
    np.fill_diagonal(w, np.nan)
    means = np.array(
        [[np.nanmean(w[np.ix_(labels == k, labels == other)]) for other in blocks] for k in blocks]
    )
    out = np.full(len(labels), -1)
    for k, block in enumerate(blocks):
        others = np.delete(means[k], k)
        if np.isfinite(means[k, k]) and (others.size == 0 or means[k, k] > np.nanmax(others)):
            out[labels == block] = block
    return out


def validate_against_truth(result: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    from neurodag.connectome.pipeline import pair_matrix

    window_s = float(result["affinity"].attrs["window_s"])
    stimulus = np.flatnonzero(truth["group_active"].values.any(axis=1))
    indicator = epoch_indicator(truth, result["window_time"].values, window_s)[stimulus]
    time_f = result["time_factor"].values  # (component, window)
    corr = np.array([[np.corrcoef(e, f)[0, 1] for f in time_f] for e in indicator])
    corr = np.nan_to_num(corr, nan=-1.0)
    rows, cols = linear_sum_assignment(-corr)
    matched = np.full(len(stimulus), -1)
    matched[rows] = cols
    neurons = result["neuron"].values
    member = truth["group_member"].sel(neuron=neurons).values  # (group, neuron)
    n = len(neurons)
    nmi_sbm, nmi_louvain = np.full(len(stimulus), np.nan), np.full(len(stimulus), np.nan)
    for k, e in enumerate(stimulus):
        r = matched[k]
        if r < 0:
            continue
        active = truth["group_active"].values[e]
        driven = member & active[:, None]
        planted = np.where(driven.any(0), driven.argmax(0), -1)
        weights = pair_matrix(result["pair_factor"].values[r], n)
        nmi_sbm[k] = nmi(planted, assortative_labels(result["community"].values[r], weights))
        nmi_louvain[k] = nmi(
            planted, assortative_labels(result["louvain_community"].values[r], weights)
        )
    matched_corr = np.array([corr[k, c] if c >= 0 else np.nan for k, c in enumerate(matched)])
    return xr.Dataset(
        {
            "validation_epoch_indicator": (("stimulus_epoch", "window"), indicator),
            "validation_matched_component": ("stimulus_epoch", matched),
            "validation_time_correlation": ("stimulus_epoch", matched_corr),
            "validation_nmi_sbm": ("stimulus_epoch", nmi_sbm),
            "validation_nmi_louvain": ("stimulus_epoch", nmi_louvain),
        },
        coords={"stimulus_epoch": truth["epoch"].values[stimulus]},
        attrs={
            "validation_nmi": float(np.nanmean(nmi_sbm)),
            "validation_nmi_louvain": float(np.nanmean(nmi_louvain)),
            "validation_min_time_correlation": float(np.nanmin(matched_corr)),
        },
    )
