"""The connectome stage's contract verbs: homogenized worms -> ``results/connectome/{dataset}.nc``.

``run`` reads ``activity(worm, time, neuron)`` (the homogenize output) and, when given, a
homogenized connectome for the structure-versus-function test, computes the affinities on the
stage's Dask cluster and returns :func:`~neurodag.connectome.pipeline.dynamic_connectome`'s result
with the stimulus epochs of the first worm (for the time-factor figure); ``validate`` scores it
against a simulation's planted groups (:mod:`.validate`); ``figures`` draws :mod:`.figures`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from neurodag.compute import Compute
from neurodag.errors import InputError
from neurodag.stages import Inputs, Output, Params, Spec

log = logging.getLogger(__name__)


def stimulus_epochs(activity: xr.Dataset) -> xr.Dataset:
    """(start, stop, name) runs of the first worm's ``stimulus(worm, time)`` label."""
    if "stimulus" not in activity:
        return xr.Dataset()
    label = activity["stimulus"].values[0].astype(str)
    time = activity["time"].values
    starts = np.flatnonzero(np.r_[True, label[1:] != label[:-1]])
    stops = np.r_[starts[1:], len(label)] - 1
    return xr.Dataset(
        {
            "epoch_start": ("stimulus_epoch", time[starts]),
            "epoch_stop": ("stimulus_epoch", time[stops]),
            "epoch_name": ("stimulus_epoch", label[starts]),
        }
    )


def run(
    inputs: Inputs, params: Params, *, compute: Compute, dataset: Spec = None, output: Output = None
) -> xr.Dataset:
    """The dynamic connectome of ``inputs["activity"]`` (+ ``inputs["anatomy"]``, optional)."""
    from neurodag.connectome.pipeline import dynamic_connectome
    from neurodag.io.netcdf import open_dataset

    path = inputs["activity"][0]
    activity = open_dataset(path).load()
    if "activity" not in activity:
        raise InputError(path, "activity", "no activity(worm, time, neuron) variable")
    anatomy = open_dataset(inputs["anatomy"][0]).load() if inputs.get("anatomy") else None
    with compute.client() as client:
        result = dynamic_connectome(activity, params, client=client, connectome=anatomy)
    result = result.merge(stimulus_epochs(activity))
    if "behavior" in activity:
        from neurodag.connectome.behavior import behaviour_against_components

        log.info("components against behaviour: %s", ", ".join(activity["variable"].values))
        behaviour = behaviour_against_components(
            result, activity, params, n_null=params["behavior_null_draws"], seed=params["seed"]
        )
        result = result.assign(behaviour.data_vars)
        result.attrs.update(behaviour.attrs)
    return result


def validate(result: xr.Dataset, truth: Path | None) -> xr.Dataset:
    """Agreement with a simulation's planted epochs and groups (nothing without a truth file)."""
    if truth is None:
        return xr.Dataset()
    from neurodag.connectome.validate import validate_against_truth
    from neurodag.io.netcdf import open_dataset

    truth = open_dataset(truth).load()
    validation = validate_against_truth(result, truth)
    if "behavior_corr_mean" in result and "behavior_group" in truth:
        validation = validation.assign(behaviour_validation(result, truth, validation).data_vars)
    log.info(
        "validation: time-factor correlation of matched components %s; planted-group NMI "
        "%.3f (SBM) vs %.3f (Louvain) over correctly identified names (%d misidentified "
        "names left out)",
        [round(float(v), 3) for v in validation["validation_time_correlation"].values],
        float(validation["validation_nmi"]),
        float(validation["validation_nmi_louvain_mean"]),
        int(validation["validation_misidentified_names"]),
    )
    return validation


def behaviour_validation(
    result: xr.Dataset, truth: xr.Dataset, validation: xr.Dataset
) -> xr.Dataset:
    """For each planted behaviour, is the component that tracks it best (largest mean |r| over
    worms) one that carries its driving group (matched to a condition that activates the group)?
    And that component's BH q-value."""
    from neurodag.connectome.validate import planted_conditions

    active = np.asarray(truth["group_active"].values, dtype=bool)  # (epoch, group)
    matched = validation["validation_matched_component"].values
    carriers: dict[int, set[int]] = {}
    for k, epochs in enumerate(planted_conditions(active)):
        if matched[k] >= 0:
            for group in np.flatnonzero(active[epochs[0]]):
                carriers.setdefault(int(group), set()).add(int(matched[k]))
    variables = [str(v) for v in truth["variable"].values]
    found, q = [], []
    for v, name in enumerate(variables):
        corr = result["behavior_corr_mean"].sel(variable=name).values
        best = int(np.nanargmax(np.abs(corr))) if np.isfinite(corr).any() else -1
        group = int(truth["behavior_group"].values[v])
        found.append(float(best in carriers.get(group, set())))
        q.append(float(result["behavior_q_mean"].sel(variable=name).values[best]))
    out = xr.Dataset(
        {
            "validation_behavior_component_found": ("behavior_variable", found),
            "validation_behavior_q": ("behavior_variable", q),
        },
        coords={"behavior_variable": variables},
    )
    out["validation_behavior_component_found"].attrs["description"] = (
        "1 if the component tracking the behaviour best carries its planted driving group"
    )
    out["validation_behavior_q"].attrs["description"] = "BH q-value of that component (mean r)"
    return out


def figures(result: xr.Dataset, stem: Path) -> list[Path]:
    """Time factors over the stimulus epochs, communities, the rank-selection curves and, when
    the worms have behaviour, component courses over behaviour (first worm)."""
    from neurodag.connectome.behavior import plot_components_over_behaviour
    from neurodag.connectome.figures import community_figure, rank_figure, time_factor_figure

    paths = [
        time_factor_figure(result, stem.with_name(stem.name + ".time_factors.png")),
        community_figure(result, stem.with_name(stem.name + ".communities.png")),
        rank_figure(result, stem.with_name(stem.name + ".rank.png")),
    ]
    if "behavior_corr" in result:
        path = stem.with_name(stem.name + ".behavior.png")
        paths.append(plot_components_over_behaviour(result, result["window_time"].values, path))
    return paths
