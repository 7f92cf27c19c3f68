"""The one NetCDF writer (and reader) every stage uses.

Files are NetCDF4 through the h5netcdf engine, gzip-compressed, and carry provenance attributes:
``neurodag_version``, ``stage``, ``parameters`` (JSON), ``inputs`` (JSON list of path + sha256) and
``created`` (UTC, ISO 8601). Writes are atomic: the dataset is written to a hidden temporary file
beside the target, flushed to disk, then renamed over the target, so a crash or a kill at any point
leaves either the previous file or none, never a partial one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurodag import __version__
from neurodag.errors import InputError

ENGINE = "h5netcdf"
PROVENANCE_ATTRS = ("neurodag_version", "stage", "parameters", "inputs", "created")


#: sha256 of the files this process has hashed, keyed by what would change with their content
#: (device, inode, size, modification time in ns): an ingest that writes one output per stimulus
#: reads its multi-GB input once, not once per output.
_HASHES: dict[tuple, str] = {}


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """sha256 of a file; of a folder, the sha256 over its files' relative paths and hashes. A
    file already hashed by this process and unchanged since (same inode, size and mtime) is not
    read again."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(child.relative_to(path)).encode())
            digest.update(file_sha256(child).encode())
        return digest.hexdigest()
    stat = path.stat()
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        with open(path, "rb") as handle:
            while block := handle.read(chunk_size):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def describe_inputs(paths: Iterable[str | Path]) -> list[dict[str, str]]:
    return [{"path": str(p), "sha256": file_sha256(p)} for p in paths]


def _encoding(ds: xr.Dataset, complevel: int) -> dict[str, dict[str, Any]]:
    encoding = {}
    for name, var in {**ds.data_vars, **ds.coords}.items():
        if var.ndim == 0 or var.dtype.kind not in "biufc" or var.size < 64:
            continue
        encoding[name] = {"compression": "gzip", "compression_opts": complevel, "shuffle": True}
    return encoding


def temporary_path(path: Path, pid: int | None = None) -> Path:
    """The hidden sibling that process ``pid`` (default: this one) writes before renaming."""
    return path.with_name(f".{path.name}.{pid or os.getpid()}.tmp")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporaries that killed writers (SIGKILL, scancel, node loss) left beside
    ``path``; a temporary whose process still runs on this machine is left alone."""
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 : -len(".tmp")]
        if pid.isdigit() and not _process_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            removed.append(tmp)
    return removed


def write_dataset(
    ds: xr.Dataset,
    path: str | Path,
    *,
    stage: str,
    parameters: Mapping[str, Any] | None = None,
    inputs: Iterable[str | Path] = (),
    complevel: int = 4,
    groups: Mapping[str, xr.Dataset] | None = None,
) -> Path:
    """Write ``ds`` to ``path`` atomically, with provenance attributes. Returns the path.

    ``groups`` are written as NetCDF groups of the same file (read one with
    ``xr.open_dataset(path, group=name)``); the provenance sits on the root."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = ds.copy()
    out.attrs.update(
        neurodag_version=__version__,
        stage=stage,
        parameters=json.dumps(parameters or {}, sort_keys=True, default=_json_default),
        inputs=json.dumps(describe_inputs(inputs)),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    try:
        out.to_netcdf(tmp, engine=ENGINE, encoding=_encoding(out, complevel))
        for name, group in (groups or {}).items():
            group.to_netcdf(
                tmp, mode="a", group=name, engine=ENGINE, encoding=_encoding(group, complevel)
            )
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"parameter value {value!r} is not JSON-serialisable")


def open_dataset(path: str | Path, group: str | None = None) -> xr.Dataset:
    """Load a neurodag NetCDF file (or one of its ``group``s) into memory; the file is closed on
    return."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "file not found")
    try:
        return xr.load_dataset(path, engine=ENGINE, group=group)
    except (OSError, ValueError) as exc:
        if group is not None:
            import h5py

            with contextlib.suppress(OSError), h5py.File(path, "r") as handle:
                if group not in handle:
                    groups = [k for k, v in handle.items() if isinstance(v, h5py.Group)]
                    raise InputError(
                        path, group, f"no such group; the file has {', '.join(groups) or 'none'}"
                    ) from exc
        raise InputError(path, None, f"not a readable NetCDF4/HDF5 file ({exc})") from exc


def provenance(ds: xr.Dataset) -> dict[str, Any]:
    """The provenance attributes of a dataset, with the JSON ones decoded."""
    out: dict[str, Any] = {}
    for key in PROVENANCE_ATTRS:
        if key not in ds.attrs:
            continue
        value = ds.attrs[key]
        out[key] = json.loads(value) if key in ("parameters", "inputs") else value
    return out
