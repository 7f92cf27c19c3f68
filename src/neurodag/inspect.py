"""``neurodag inspect``: a readable description of any neurodag NetCDF file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from neurodag.io.netcdf import open_dataset, provenance


def _summary(var: xr.DataArray) -> str:
    if var.dtype.kind not in "biuf" or var.size == 0:
        return ""
    values = np.asarray(var.values, dtype=float)
    finite = values[np.isfinite(values)]
    nan_share = 1 - finite.size / values.size
    if finite.size == 0:
        return "all NaN"
    text = (
        f"min {finite.min():.4g}  mean {finite.mean():.4g}  max {finite.max():.4g}  "
        f"nonzero {np.count_nonzero(finite) / values.size:.1%}"
    )
    return text + (f"  NaN {nan_share:.1%}" if nan_share else "")


def _values(coord: xr.DataArray, limit: int) -> str:
    values = coord.values.tolist()
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def describe(path: str | Path, max_values: int = 5) -> str:
    ds = open_dataset(path)
    lines = [f"{path}"]
    lines.append("dimensions: " + ", ".join(f"{d}={n}" for d, n in ds.sizes.items()))
    lines.append("coordinates:")
    for name, coord in ds.coords.items():
        lines.append(f"  {name} ({', '.join(coord.dims)}): {_values(coord, max_values)}")
    lines.append("variables:")
    width = max((len(str(n)) for n in ds.data_vars), default=0)
    for name, var in ds.data_vars.items():
        dims = ", ".join(var.dims)
        label = var.attrs.get("long_name", "")
        lines.append(f"  {name:<{width}} ({dims}) {var.dtype}  {label}".rstrip())
        summary = _summary(var)
        if summary:
            lines.append(f"  {'':<{width}}   {summary}")
    prov = provenance(ds)
    lines.append("provenance:")
    for key in ("stage", "neurodag_version", "created"):
        if key in prov:
            lines.append(f"  {key}: {prov[key]}")
    if "parameters" in prov:
        lines.append("  parameters: " + json.dumps(prov["parameters"], sort_keys=True))
    for item in prov.get("inputs", []):
        lines.append(f"  input: {item['path']}  sha256 {item['sha256'][:16]}...")
    other = {k: v for k, v in ds.attrs.items() if k not in prov}
    for key, value in other.items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)
