"""The one reader of the spiking ingest's outputs that the analysis stages share.

Stages read either the session-long ``counts(neuron, time)`` (``counts.nc``) or trial-aligned
``responses(trial, neuron, time)`` (``{stimulus}.nc``), keep the neurons of some regions (the
``region(neuron)`` coordinate) and, for counts, the bins of some epochs (``epoch(time)``). Every
fault is an :class:`~neurodag.errors.InputError` naming the file and the field, and the config key
that asked for the selection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from neurodag.errors import InputError


def read_spiking(
    path: str | Path,
    variable: str,
    dims: Sequence[str],
    *,
    regions: Iterable[str] | None = None,
    epochs: Iterable[str] | None = None,
    require: Iterable[str] = (),
    key: str = "",
) -> xr.Dataset:
    """The ingest file ``path`` with ``variable`` checked to have ``dims``, restricted to the
    neurons of ``regions`` and the time bins of ``epochs`` (None or empty: all).

    ``require`` names further variables or coordinates the stage needs; ``key`` is the config
    section of the stage (``stages.bicluster``), quoted in the errors about a selection.
    """
    from neurodag.io.netcdf import open_dataset

    ds = open_dataset(path)
    expected = f"{variable}({', '.join(dims)})"
    if variable not in ds:
        raise InputError(path, variable, f"missing; expected {expected}")
    if set(ds[variable].dims) != set(dims):
        raise InputError(path, variable, f"dims {ds[variable].dims}, expected {expected}")
    for name in require:
        if name not in ds.variables:
            raise InputError(path, name, f"missing; this stage needs it beside {expected}")
    ds = _select(ds, path, "region", "neuron", regions, f"{key}.regions")
    return _select(ds, path, "epoch", "time", epochs, f"{key}.epochs")


def _select(ds, path, label: str, dim: str, wanted, key: str) -> xr.Dataset:
    wanted = list(wanted or [])
    if not wanted:
        return ds
    if label not in ds.variables:
        raise InputError(path, label, f"no {label}({dim}) to select {key} from")
    values = ds[label].values.astype(str)
    keep = np.isin(values, wanted)
    if not keep.any():
        raise InputError(
            path, label, f"none of {wanted} ({key}); the file has {sorted(set(values.tolist()))}"
        )
    return ds.isel({dim: keep})
