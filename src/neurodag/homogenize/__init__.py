"""The homogenize stage (Simeon et al., "Homogenized C. elegans Neural Activity and Connectivity
Data"): every dataset onto the canonical neuron axis, one file per dataset."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from neurodag.errors import ConfigError


def homogenize(
    spec: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
    *,
    ingested: list[Path] | None = None,
    compute: Mapping[str, Any] | None = None,
    threads: int | None = None,
    memory_mb: int | None = None,
) -> tuple[xr.Dataset, list[Path]]:
    """Homogenize one dataset given its config entry; returns the dataset and the files it read.

    Connectomes are read from the dataset's own files; C. elegans activity from its ingest files
    (``ingested``), worms in parallel on the Dask cluster of ``compute``.
    """
    parameters = parameters or {}
    if spec["kind"] == "connectome":
        from neurodag.homogenize.connectomes import build_connectome, connectome_inputs

        return build_connectome(spec, parameters.get("connectome")), connectome_inputs(spec)
    if spec["kind"] == "celegans":
        from neurodag.homogenize.calcium import homogenize_celegans

        files = [Path(p) for p in ingested or []]
        ds = homogenize_celegans(
            spec,
            parameters.get("celegans"),
            files,
            compute=compute,
            threads=threads,
            memory_mb=memory_mb,
        )
        return ds, files
    raise ConfigError(f"kind {spec['kind']!r}: homogenize does not handle this kind of dataset")
