"""Agreement of a dynamic connectome with a simulation's planted groups and stimulus epochs.

``truth`` is ``neurodag simulate celegans``'s ``truth.nc``: ``group_member(group, neuron)``,
``group_active(epoch, group)``, ``epoch_start/epoch_stop(epoch)``. Each planted group's activity
over the analysis windows is the fraction of the window inside its active epochs. Components are
matched one-to-one to groups by the Pearson correlation of their time factor with that activity
(Hungarian assignment). The recovered partition gives each matched component's top community (the
SBM block with the highest within-block weight, block 0; for Louvain, the community with the
highest mean within weight) its group's label, every other neuron "no group"; its NMI with the
planted partition is measured over the analysed neurons.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from neurodag.connectome.metrics import nmi


def group_activity(truth: xr.Dataset, window_time: np.ndarray, window_s: float) -> np.ndarray:
    """(group, window): fraction of each window during which each group is driven."""
    starts, stops = truth["epoch_start"].values, truth["epoch_stop"].values
    active = truth["group_active"].values  # (epoch, group)
    lo, hi = window_time - window_s / 2, window_time + window_s / 2
    overlap = np.clip(
        np.minimum(hi[:, None], stops[None]) - np.maximum(lo[:, None], starts[None]), 0, None
    )  # (window, epoch)
    return (overlap @ active.astype(float)).T / window_s


def _top_louvain(labels: np.ndarray, weights: np.ndarray) -> int:
    best, best_mean = 0, -np.inf
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            continue
        block = weights[np.ix_(members, members)]
        mean = np.nanmean(block[~np.eye(len(members), dtype=bool)])
        if mean > best_mean:
            best, best_mean = c, mean
    return best


def validate_against_truth(result: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    from neurodag.connectome.pipeline import pair_matrix

    window_s = float(result["affinity"].attrs["window_s"])
    activity = group_activity(truth, result["window_time"].values, window_s)
    time_f = result["time_factor"].values  # (component, window)
    n_groups, rank = activity.shape[0], time_f.shape[0]
    corr = np.zeros((n_groups, rank))
    for g in range(n_groups):
        for r in range(rank):
            corr[g, r] = np.corrcoef(activity[g], time_f[r])[0, 1]
    corr = np.nan_to_num(corr, nan=-1.0)
    rows, cols = linear_sum_assignment(-corr)
    matched = np.full(n_groups, -1)
    matched[rows] = cols
    neurons = result["neuron"].values
    member = truth["group_member"].sel(neuron=neurons).values  # (group, neuron)
    planted = np.where(member.any(0), member.argmax(0), n_groups)
    found_sbm = np.full(len(neurons), n_groups)
    found_louvain = np.full(len(neurons), n_groups)
    per_group_sbm, per_group_louvain = np.full(n_groups, np.nan), np.full(n_groups, np.nan)
    for g in range(n_groups):
        r = matched[g]
        if r < 0:
            continue
        top = result["community"].values[r] == 0
        found_sbm[top] = g
        weights = pair_matrix(result["pair_factor"].values[r], len(neurons))
        labels = result["louvain_community"].values[r]
        top_l = labels == _top_louvain(labels, weights)
        found_louvain[top_l] = g
        per_group_sbm[g] = nmi(member[g], top)
        per_group_louvain[g] = nmi(member[g], top_l)
    matched_corr = np.array(
        [corr[g, matched[g]] if matched[g] >= 0 else np.nan for g in range(n_groups)]
    )
    return xr.Dataset(
        {
            "validation_group_activity": (("group", "window"), activity),
            "validation_matched_component": ("group", matched),
            "validation_time_correlation": ("group", matched_corr),
            "validation_group_nmi": ("group", per_group_sbm),
            "validation_group_nmi_louvain": ("group", per_group_louvain),
            "validation_planted_group": ("neuron", planted),
        },
        coords={"group": truth["group"].values},
        attrs={
            "validation_nmi": nmi(planted, found_sbm),
            "validation_nmi_louvain": nmi(planted, found_louvain),
            "validation_min_time_correlation": float(np.nanmin(matched_corr)),
        },
    )
