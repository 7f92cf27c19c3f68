"""C. elegans calcium datasets: which recordings a dataset has, and reading one into the contract.

The ingest contract (``docs/data-model.md``): one file per recording with ``activity(worm, time,
neuron)`` over the 300 canonical neurons (NaN where not recorded or not confidently labelled),
``labeled(worm, neuron)``, ``valid_length(worm)``, and every trace without a trusted canonical label
in ``unlabeled_activity(worm, time, roi)`` with its raw label in ``roi_label(worm, roi)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurodag.errors import ConfigError
from neurodag.io.paths import resolve_files

SUFFIXES = {"dag2023-h5": (".h5",), "celegans-nwb": (".nwb",), "homogenized-parquet": (".parquet",)}


def recording_names(spec: Mapping[str, Any]) -> list[str]:
    """The recordings of a C. elegans dataset (names of its ingest files, without .nc)."""
    fmt = spec["format"]
    if fmt == "simulated":
        n = int((spec.get("simulate") or {}).get("n_worms", 10))
        return [f"worm{w:03d}" for w in range(n)]
    if fmt in ("dag2023-h5", "celegans-nwb"):
        return [_stem(p, fmt) for p in resolve_files(spec["path"], SUFFIXES[fmt])]
    if fmt == "homogenized-parquet":
        from neurodag.io.homogenized_parquet import parquet_recordings

        return parquet_recordings(resolve_files(spec["path"], SUFFIXES[fmt]))
    raise ConfigError(f"format {fmt!r} is not a C. elegans activity format")


def _stem(path: Path, fmt: str) -> str:
    # Dag et al. name files YYYY-MM-DD-NN-data.h5; the recording is YYYY-MM-DD-NN.
    name = path.stem
    if fmt == "dag2023-h5" and name.endswith("-data"):
        name = name[: -len("-data")]
    return name
