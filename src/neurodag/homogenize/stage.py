"""The homogenize stage's contract verbs (Simeon et al., "Homogenized C. elegans Neural Activity
and Connectivity Data"): every dataset onto the canonical neuron axis, one file per dataset.

Connectomes (kind connectome) are read from the dataset's own files (``inputs["sources"]``, as
the format registry lists them) and gain their consensus;
C. elegans activity (kind celegans) from the dataset's ingest files, worms in parallel on the
stage's Dask cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from neurodag.compute import Compute
from neurodag.errors import ConfigError


def run(
    inputs: Mapping[str, list[Path]],
    params: Mapping[str, Any],
    *,
    compute: Compute,
    dataset: Mapping[str, Any] | None = None,
    output: Path | None = None,
) -> xr.Dataset:
    if dataset is None:
        raise ConfigError(
            "homogenize needs the dataset's entry (--spec, or --config and --dataset)"
        )
    if dataset["kind"] == "connectome":
        from neurodag.homogenize.connectomes import build_connectome

        return build_connectome(dataset, params["connectome"])
    if dataset["kind"] == "celegans":
        from neurodag.homogenize.calcium import homogenize_celegans

        return homogenize_celegans(
            dataset,
            params["celegans"],
            [Path(p) for p in inputs.get("sources", [])],
            compute=compute.dask,
            threads=compute.threads,
            memory_mb=compute.memory_mb,
        )
    raise ConfigError(f"kind {dataset['kind']!r}: homogenize does not handle this kind of dataset")


def validate(result: xr.Dataset, truth: Path | None) -> xr.Dataset:
    """Homogenization has no planted truth of its own to recover."""
    return xr.Dataset()


def figures(result: xr.Dataset, stem: Path) -> list[Path]:
    from neurodag.homogenize.figures import plot_homogenized

    return [plot_homogenized(result, stem.with_name(stem.name + ".summary.png"), title=stem.name)]
