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
    if "behavior" in ds and "variable" in ds.dims:
        lines.extend(_behaviour_lines(ds))
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


def _behaviour_lines(ds: xr.Dataset) -> list[str]:
    """Per behavioural variable: its unit and summary over every worm and time step."""
    from neurodag.homogenize.figures import behaviour_units

    units = behaviour_units(ds)
    lines = ["behaviour (behavior(worm, time, variable)):"]
    width = max(len(str(v)) for v in ds["variable"].values)
    for name in ds["variable"].values:
        var = ds["behavior"].sel(variable=name)
        unit = units.get(str(name), "") or "-"
        lines.append(f"  {str(name):<{width}} [{unit}]  {_summary(var)}".rstrip())
    return lines


def _worm_view(ds: xr.Dataset) -> bool:
    """A C. elegans calcium file with behaviour: activity and behaviour of one worm side by side."""
    return {"activity", "labeled", "behavior"} <= set(ds.data_vars) and "worm" in ds.dims


def _reduce_to_2d(var: xr.DataArray) -> tuple[xr.DataArray, str]:
    """At most two dimensions to draw: leading extra dimensions are taken at their first index."""
    fixed = []
    while var.ndim > 2:
        dim = var.dims[0]
        label = var[dim].values[0] if dim in var.coords else 0
        fixed.append(f"{dim}={label}")
        var = var.isel({dim: 0})
    return var, ", ".join(fixed)


def quick_look(path: str | Path, output: str | Path | None = None, max_panels: int = 12) -> Path:
    """One PNG with a panel per numeric variable: a line for 1-D, an image for 2-D and more."""
    from neurodag.plotting import DIVERGING, SEQUENTIAL, figure, save_figure

    ds = open_dataset(path)
    names = [n for n, v in ds.data_vars.items() if v.dtype.kind in "biuf" and v.size > 1]
    worm_view = _worm_view(ds)
    if worm_view:  # one worm's activity and behaviour first, side by side
        names = ["activity", "behavior", *(n for n in names if n not in ("activity", "behavior"))]
    names = names[:max_panels]
    if not names:
        from neurodag.errors import InputError

        raise InputError(path, None, "has no numeric variable to plot")
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = figure(nrows, ncols, width=4.2 * ncols, height=3.4 * nrows, squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_axis_off()
    for ax, name in zip(axes.flat, names, strict=False):
        if worm_view and name in ("activity", "behavior"):
            from neurodag.homogenize.figures import (
                draw_behaviour,
                draw_worm_activity,
                showcase_worm,
            )

            w = showcase_worm(ds)
            if name == "activity":
                draw_worm_activity(fig, ax, ds, w)
                ax.set_xlabel("time (s)")
            else:
                draw_behaviour(ax, ds, w)
                ax.set_title(f"worm {ds.worm.values[w]}: behaviour", loc="center")
            continue
        var, fixed = _reduce_to_2d(ds[name].astype(float))
        units = ds[name].attrs.get("units", "")
        title = name + (f" [{fixed}]" if fixed else "")
        if var.ndim == 1:
            ax.plot(var[var.dims[0]].values if var.dims[0] in var.coords else range(var.size), var)
            ax.set(xlabel=var.dims[0], ylabel=f"{name} ({units})" if units else name)
        else:
            values = var.values
            finite = values[np.isfinite(values)]
            # robust colour limits: a few outliers must not wash out the rest of the image
            low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
            signed = low < 0 < high
            limit = max(abs(low), abs(high))
            image = ax.imshow(
                values,
                aspect="auto",
                interpolation="nearest",
                cmap=DIVERGING if signed else SEQUENTIAL,
                vmin=-limit if signed else low,
                vmax=limit if signed else high,
            )
            label = units if units and len(units) <= 30 else name
            fig.colorbar(image, ax=ax, label=label, shrink=0.8, extend="both")
            ax.set(xlabel=var.dims[1], ylabel=var.dims[0])
        ax.set_title(title)
    fig.suptitle(f"{Path(path).name}: {provenance(ds).get('stage', '')}")
    target = Path(output) if output else Path(path).with_suffix(".png")
    return save_figure(fig, target)
