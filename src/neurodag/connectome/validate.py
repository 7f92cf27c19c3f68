"""Agreement of a dynamic connectome with a simulation's planted epochs and groups.

``truth`` is ``neurodag simulate celegans``'s ``truth.nc``: ``group_member(group, neuron)``,
``group_active(epoch, group)``, ``epoch_start/epoch_stop(epoch)``.

What is planted in time is a *condition*: the set of groups an epoch drives. Stimulus epochs that
drive the same set of groups are one condition (their indicators are summed): each group's shared
input is one Ornstein-Uhlenbeck process running through the whole recording and switched on in its
epochs, so two epochs with the same active groups have the same statistics and nothing in the data
(or in the affinity tensor) tells them apart; a component spanning both is the correct answer, and
scoring each such epoch on its own would penalise it. Each condition's indicator over the analysis
windows is the fraction of the window inside the condition's epochs. Components are matched
one-to-one to conditions by the Pearson correlation of their time factor with the indicator
(Hungarian assignment).

For a matched component, the planted partition labels each neuron with the group it belongs to
among the condition's active groups (neurons of no active group: "none"). The recovered partition
keeps the component's *assortative* communities on the graph the SBM saw (blocks whose mean
within-block weight exceeds the mean weight between any two blocks, i.e. communities in the usual
sense) and merges the other blocks into "none". NMI is measured per condition, for the SBM and for
Louvain, over the analysed neurons whose identity the data get right: the simulation mislabels some
ROIs (``label_status`` "wrong": the trace of one neuron filed under another's name), and a name that
carries, in some worm, another neuron's trace has no single identity at the level of names (nor,
where that neuron is a group member, a single planted group), so every such name is left out.
``validation_nmi_*_all_labels`` scores every analysed name, with each name's planted group taken
from its true identity.
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
    """Blocks that are communities keep their label; the others become -1.

    A block is a community when it is strongly assortative (Amini & Levina 2018, Ann. Stat. 46,
    "On semidefinite relaxations for the block model"): its mean within-block weight exceeds the
    mean weight between every pair of distinct blocks. On a noisy background the SBM also returns
    background blocks whose within mean exceeds their own between means by a hair (ratios of
    1.0-1.3 on the simulated worms, against 3-7 for planted groups); those are not communities.
    The rule compares block means, so unlike a significance test over pairs it does not admit
    such a block merely because a large block has many pairs."""
    _, labels = np.unique(labels, return_inverse=True)
    w = np.where(np.isfinite(weights), weights, 0.0)
    np.fill_diagonal(w, 0.0)
    seen = np.isfinite(weights).astype(np.float64)
    np.fill_diagonal(seen, 0.0)
    onehot = np.eye(labels.max() + 1)[labels]
    pairs = onehot.T @ seen @ onehot
    means = (onehot.T @ w @ onehot) / np.maximum(pairs, 1)
    between = np.where(~np.eye(len(means), dtype=bool) & (pairs > 0), means, -np.inf)
    communities = np.flatnonzero((np.diag(pairs) > 0) & (np.diag(means) > between.max()))
    return np.where(np.isin(labels, communities), labels, -1)


def misidentified_names(truth: xr.Dataset) -> set[str]:
    """Neuron names that some worm's ROI of another neuron carries (``label_status`` "wrong")."""
    if "label_status" not in truth or "roi_label" not in truth:
        return set()
    wrong = truth["label_status"].values == "wrong"
    return {str(name) for name in truth["roi_label"].values[wrong]}


def planted_conditions(group_active: np.ndarray) -> list[np.ndarray]:
    """Stimulus epochs grouped by the set of groups they drive, in order of first occurrence."""
    conditions: dict[bytes, list[int]] = {}
    for e, active in enumerate(np.asarray(group_active, dtype=bool)):
        if active.any():
            conditions.setdefault(active.tobytes(), []).append(e)
    return [np.array(epochs) for epochs in conditions.values()]


def validate_against_truth(result: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    from neurodag.connectome.pipeline import result_component_graph

    window_s = float(result["affinity"].attrs["window_s"])
    active_sets = truth["group_active"].values
    per_epoch = epoch_indicator(truth, result["window_time"].values, window_s)
    conditions = planted_conditions(active_sets)
    indicator = np.array([per_epoch[epochs].sum(0) for epochs in conditions])
    time_f = result["time_factor"].values  # (component, window)
    corr = np.array([[np.corrcoef(e, f)[0, 1] for f in time_f] for e in indicator])
    corr = np.nan_to_num(corr, nan=-1.0)
    rows, cols = linear_sum_assignment(-corr)
    matched = np.full(len(conditions), -1)
    matched[rows] = cols
    neurons = result["neuron"].values
    member = truth["group_member"].sel(neuron=neurons).values  # (group, neuron)
    identified = ~np.isin(neurons.astype(str), list(misidentified_names(truth)))
    scores = {
        f"{method}{suffix}": np.full(len(conditions), np.nan)
        for method in ("sbm", "louvain")
        for suffix in ("", "_all_labels")
    }
    for k, epochs in enumerate(conditions):
        r = matched[k]
        if r < 0:
            continue
        active = active_sets[epochs[0]]
        driven = member & active[:, None]
        planted = np.where(driven.any(0), driven.argmax(0), -1)
        weights = result_component_graph(result, r)
        for method, variable in (("sbm", "community"), ("louvain", "louvain_community")):
            found = assortative_labels(result[variable].values[r], weights)
            scores[method][k] = nmi(planted[identified], found[identified])
            scores[f"{method}_all_labels"][k] = nmi(planted, found)
    matched_corr = np.array([corr[k, c] if c >= 0 else np.nan for k, c in enumerate(matched)])
    headline = {
        "validation_nmi": (
            float(np.nanmean(scores["sbm"])),
            "planted-group NMI of the SBM "
            "communities, mean over conditions, correctly identified names",
        ),
        "validation_nmi_louvain_mean": (
            float(np.nanmean(scores["louvain"])),
            "the same for Louvain",
        ),
        "validation_misidentified_names": (
            int((~identified).sum()),
            "names left out: they carry another neuron's ROI in some worm",
        ),
        "validation_min_time_correlation": (
            float(np.nanmin(matched_corr)),
            "worst time-factor correlation of a matched component",
        ),
    }
    return xr.Dataset(
        {
            "validation_condition_indicator": (("condition", "window"), indicator),
            "validation_matched_component": ("condition", matched),
            "validation_time_correlation": ("condition", matched_corr),
            **{f"validation_nmi_{name}": ("condition", v) for name, v in scores.items()},
            **{
                name: ((), value, {"description": description})
                for name, (value, description) in headline.items()
            },
        },
        coords={
            "condition": np.arange(len(conditions)),
            "condition_epochs": (
                "condition",
                ["+".join(str(truth["epoch"].values[e]) for e in epochs) for epochs in conditions],
            ),
        },
    )
