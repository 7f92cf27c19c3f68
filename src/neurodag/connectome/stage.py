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
    return result.merge(stimulus_epochs(activity))


def validate(result: xr.Dataset, truth: Path | None) -> xr.Dataset:
    """Agreement with a simulation's planted epochs and groups (nothing without a truth file)."""
    if truth is None:
        return xr.Dataset()
    from neurodag.connectome.validate import validate_against_truth
    from neurodag.io.netcdf import open_dataset

    validation = validate_against_truth(result, open_dataset(truth).load())
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


def figures(result: xr.Dataset, stem: Path) -> list[Path]:
    """Time factors over the stimulus epochs, communities, and the rank-selection curves."""
    from neurodag.connectome.figures import community_figure, rank_figure, time_factor_figure

    return [
        time_factor_figure(result, stem.with_name(stem.name + ".time_factors.png")),
        community_figure(result, stem.with_name(stem.name + ".communities.png")),
        rank_figure(result, stem.with_name(stem.name + ".rank.png")),
    ]
