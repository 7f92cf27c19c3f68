"""The format registry: every reader of raw recordings, keyed by (kind, format).

An entry says how a dataset of that format lists its recordings, which raw files one recording
reads, and how ``neurodag ingest`` reads them into the data contracts (``docs/data-model.md``).
Functions are named as ``(module, function)`` and imported when used, as the simulator's
``PIECES`` are, so that enumerating datasets (Snakemake's parse) imports no reader.

- ``recordings(spec, suffixes) -> list[str]``: recording names (the ingest outputs' stems);
- ``files(spec, recording, suffixes) -> list[Path]``: the raw files of one recording;
- ``read(spec, recording, files, params) -> xr.Dataset | dict[str, xr.Dataset]``: one dataset
  (written to the output file) or named datasets (written into the output folder as
  ``<name>.nc``); ``params`` is the kind's block of ``stages.ingest``.

Kinds read only by a stage (connectome, rdm) have no ``read``: their ``files`` list what the stage
reads, for Snakemake and provenance. Simulated datasets are written by the workflow
(``results/simulate/{dataset}/``) and read by their kind's NWB reader.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurodag.errors import ConfigError

if TYPE_CHECKING:
    import xarray as xr

Function = tuple[str, str]
CELEGANS = "neurodag.io.celegans"


@dataclass(frozen=True)
class Format:
    kind: str
    name: str
    suffixes: tuple[str, ...]
    files: Function | None
    recordings: Function | None = None
    read: Function | None = None
    figures: Function | None = None  # figures(outputs, folder) of a folder-writing reader

    def call(self, which: str, *args: Any) -> Any:
        target = getattr(self, which)
        if target is None:
            raise ConfigError(
                f"format {self.name} (kind {self.kind}) has no {which} step"
                + ("; `neurodag simulate` writes its files" if which == "files" else "")
            )
        module, function = target
        return getattr(importlib.import_module(module), function)(*args)


FORMATS: dict[tuple[str, str], Format] = {
    (f.kind, f.name): f
    for f in (
        Format(
            "celegans",
            "dag2023-h5",
            (".h5",),
            files=(CELEGANS, "dag2023_files"),
            recordings=(CELEGANS, "file_recordings"),
            read=(CELEGANS, "read_dag2023_recording"),
        ),
        Format(
            "celegans",
            "celegans-nwb",
            (".nwb",),
            files=(CELEGANS, "recording_file"),
            recordings=(CELEGANS, "file_recordings"),
            read=(CELEGANS, "read_nwb_recording"),
        ),
        Format(
            "celegans",
            "homogenized-parquet",
            (".parquet",),
            files=(CELEGANS, "all_files"),
            recordings=(CELEGANS, "parquet_recordings"),
            read=(CELEGANS, "read_parquet_recording"),
        ),
        Format(
            "celegans",
            "simulated",
            (".nwb",),
            files=None,
            recordings=(CELEGANS, "simulated_recordings"),
            read=(CELEGANS, "read_nwb_recording"),
        ),
        Format(
            "allen",
            "allen-nwb",
            (".nwb",),
            files=(CELEGANS, "recording_file"),
            recordings=(CELEGANS, "file_recordings"),
            read=("neurodag.ingest_allen", "read_recording"),
            figures=("neurodag.ingest_allen", "figures"),
        ),
        Format(
            "allen",
            "simulated",
            (".nwb",),
            files=None,
            recordings=("neurodag.ingest_allen", "simulated_recordings"),
            read=("neurodag.ingest_allen", "read_recording"),
            figures=("neurodag.ingest_allen", "figures"),
        ),
        Format(
            "spikes",
            "nwb",
            (".nwb",),
            files=(CELEGANS, "recording_file"),
            recordings=(CELEGANS, "file_recordings"),
            read=("neurodag.io.nwb_spikes", "read_recording"),
            figures=("neurodag.ingest_allen", "figures"),
        ),
        Format(
            "spikes",
            "simulated",
            (".nwb",),
            files=None,
            recordings=("neurodag.ingest_allen", "simulated_recordings"),
            read=("neurodag.io.nwb_spikes", "read_recording"),
            figures=("neurodag.ingest_allen", "figures"),
        ),
        Format(
            "connectome",
            "wormneuroatlas",
            (".csv", ".xlsx", ".json"),
            files=("neurodag.homogenize.connectomes", "wormneuroatlas_files"),
        ),
        Format(
            "connectome",
            "openworm-csv",
            (".csv",),
            files=("neurodag.homogenize.connectomes", "edge_list_files"),
        ),
        Format("rdm", "rdm-mat", (".mat",), files=("neurodag.io.rdm_mat", "rdm_files")),
    )
}


def lookup(spec: Mapping[str, Any]) -> Format:
    """The registry entry of a dataset's (kind, format)."""
    key = (spec.get("kind"), spec.get("format"))
    if key not in FORMATS:
        known = sorted(f for k, f in FORMATS if k == key[0])
        raise ConfigError(
            f"format {key[1]!r} is not a format of kind {key[0]!r}; "
            f"formats of that kind: {', '.join(known) or 'none'}"
        )
    return FORMATS[key]


def recordings(spec: Mapping[str, Any]) -> list[str]:
    """Recording names of a dataset (one ingest output each)."""
    fmt = lookup(spec)
    return fmt.call("recordings", spec, fmt.suffixes)


def recording_files(spec: Mapping[str, Any], recording: str | None = None) -> list[Path]:
    """The raw files one recording reads (kinds without recordings: the dataset's files)."""
    fmt = lookup(spec)
    return [Path(p) for p in fmt.call("files", spec, recording, fmt.suffixes)]


def read(
    spec: Mapping[str, Any], recording: str, files: list[Path], params: Mapping[str, Any]
) -> xr.Dataset | dict[str, xr.Dataset]:
    """One recording into the data contracts; ``params`` is ``stages.ingest.<kind>``."""
    return lookup(spec).call("read", spec, recording, files, params)
