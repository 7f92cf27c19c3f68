"""The homogenize stage (Simeon et al., "Homogenized C. elegans Neural Activity and Connectivity
Data"): every dataset onto the canonical neuron axis, one file per dataset."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from neurodag.errors import ConfigError


def homogenize(
    spec: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> tuple[xr.Dataset, list[Path]]:
    """Homogenize one dataset given its config entry; returns the dataset and the files it read."""
    parameters = parameters or {}
    if spec["kind"] == "connectome":
        from neurodag.homogenize.connectomes import build_connectome, connectome_inputs

        return build_connectome(spec, parameters.get("connectome")), connectome_inputs(spec)
    raise ConfigError(f"kind {spec['kind']!r}: homogenize does not handle this kind of dataset")
