"""Homogenized C. elegans calcium activity (Simeon et al., "Homogenized C. elegans Neural Activity
and Connectivity Data").

Every worm of a dataset is brought onto one shape: the canonical 300-neuron axis, one time step
``dt`` (default 1/3 s) starting at 0 at the worm's first frame, per-neuron normalised traces. Per
worm, on the traces as recorded (labelled and unlabelled alike):

1. causal smoothing, at the recording's own frame rate (window in frames = window_s / median
   frame interval): ``moving_average`` y[t] = mean(x[t-w+1..t]); ``gaussian``
   y[t] = sum_j k_j x[t-j] / sum_j k_j with k_j = exp(-(j dt)^2 / 2 sigma^2), j = 0..w-1 (the past
   half of a Gaussian); ``exponential`` y[t] = a x[t] + (1 - a) y[t-1], a = 1 - exp(-dt / tau);
   sums are truncated (and renormalised) at the first frame;
2. resampling to ``t_j = j dt``: linear interpolation when the recording is coarser than dt
   (upsampling); when it is finer, linear interpolation onto m = ceil(dt / frame interval) points
   per step, ``t_j - dt + (i + 1) dt / m``, then their mean (a causal block average);
3. normalisation per neuron: ``zscore`` (x - mean) / std over the worm's valid time steps, or
   ``causal`` (x_t - m_t) / s_t with m_t, s_t the mean and standard deviation of x_0..x_t
   (expanding); 0 where the standard deviation is 0 (below 1e-9 max(|mean|, 1): round-off);
4. worms with fewer than ``min_duration_s`` of data are dropped, with the reason logged and kept
   in the file's ``dropped`` attribute.

A recording with gaps (the ingest ``segment`` variable changes where the acquisition skipped
frames, as in Dag et al. 2023 files whose ``gcamp/idx_splits`` leave volumes out) is smoothed per
segment (the causal sums restart at each segment's first frame) and resampled per segment: a grid
step gets a value only if it lies within a segment's first and last frame, so the gap is NaN on
the grid, never interpolated over; the frame interval is the median within segments; the duration
is the sum of the segments'; the normalisation statistics skip the NaN steps.

Behaviour (ingest ``behavior(worm, time, variable)``) is carried onto the same grid by the same
per-segment resampling, without smoothing or normalisation: a 0/1 series such as ``reversal``
becomes the fraction of each step spent in the state (the block average; linear interpolation
between frames when the recording is coarser than ``dt``), never z-scored.

Normalising last (the paper normalises first) makes the output exactly z-scored on the common
grid whatever the smoothing and resampling did. Labelled traces fill their canonical slots;
unlabelled or untrusted traces are kept in ``unlabeled_activity(worm, time, roi)``, never
scattered into free canonical slots. Worms run in parallel as Dask tasks.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurodag.config import stage_defaults
from neurodag.errors import ConfigError, InputError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- the transforms


def window_frames(window_s: float, frame_s: float) -> int:
    return max(1, int(round(window_s / frame_s)))


def smooth(x: np.ndarray, method: str, frame_s: float, params: Mapping[str, Any]) -> np.ndarray:
    """Causal smoothing along axis 0 (see the module docstring for the formulas)."""
    x = np.asarray(x, dtype=np.float64)
    if method == "none":
        return x.copy()
    if method == "moving_average":
        w = window_frames(params["smooth_window_s"], frame_s)
        csum = np.cumsum(x, axis=0)
        out = csum.copy()
        out[w:] = csum[w:] - csum[:-w]
        counts = np.minimum(np.arange(1, x.shape[0] + 1), w).reshape(-1, *([1] * (x.ndim - 1)))
        return out / counts
    if method == "gaussian":
        from scipy.signal import lfilter

        w = window_frames(params["smooth_window_s"], frame_s)
        sigma = params["gaussian_sigma_s"]
        kernel = np.exp(-((np.arange(w) * frame_s) ** 2) / (2 * sigma**2))
        numerator = lfilter(kernel, [1.0], x, axis=0)
        norm = np.cumsum(kernel)[np.minimum(np.arange(x.shape[0]), w - 1)]
        return numerator / norm.reshape(-1, *([1] * (x.ndim - 1)))
    if method == "exponential":
        from scipy.signal import lfilter

        a = 1.0 - math.exp(-frame_s / params["exponential_tau_s"])
        y, _ = lfilter([a], [1.0, a - 1.0], x, axis=0, zi=((1.0 - a) * x[:1]))
        return y
    raise ConfigError(f"stages.homogenize.celegans.smooth: unknown method {method!r}")


def target_grid(duration_s: float, dt: float) -> np.ndarray:
    """``j * dt`` for every step that fits in the recording (the first at 0)."""
    n = int(math.floor(duration_s / dt + 1e-9)) + 1
    return np.arange(n) * dt


def interpolate(t: np.ndarray, x: np.ndarray, t_new: np.ndarray) -> np.ndarray:
    """np.interp along axis 0 for every column at once (values clamped beyond the ends)."""
    t_new = np.clip(t_new, t[0], t[-1])
    right = np.clip(np.searchsorted(t, t_new, side="right"), 1, t.size - 1)
    left = right - 1
    weight = ((t_new - t[left]) / (t[right] - t[left])).reshape(-1, *([1] * (x.ndim - 1)))
    return x[left] * (1.0 - weight) + x[right] * weight


def resample_onto(
    t: np.ndarray, x: np.ndarray, grid: np.ndarray, dt: float, frame_s: float
) -> np.ndarray:
    """Frames ``x`` at ``t`` onto the steps ``grid`` (same clock; values clamped at t's ends)."""
    if t.size == 1:  # a segment of one frame: only a step at that very frame
        return np.broadcast_to(x[:1], (grid.size, *x.shape[1:])).copy()
    if frame_s >= dt:
        return interpolate(t, x, grid)
    m = math.ceil(dt / frame_s)
    fine = (grid[:, None] - dt + (np.arange(m)[None, :] + 1) * dt / m).ravel()
    values = interpolate(t, x, fine)
    return values.reshape(grid.size, m, *x.shape[1:]).mean(axis=1)


def resample(t: np.ndarray, x: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Traces on ``j * dt`` (t relative to the first frame); see the module docstring."""
    t = np.asarray(t, dtype=np.float64) - t[0]
    grid = target_grid(t[-1], dt)
    frame_s = float(np.median(np.diff(t)))
    return grid, resample_onto(t, x, grid, dt, frame_s)


def segment_bounds(segment: np.ndarray | None, n: int) -> list[tuple[int, int]]:
    """``(first, stop)`` frame slices of each run of equal ``segment`` numbers."""
    if segment is None or n == 0:
        return [(0, n)]
    cuts = np.flatnonzero(np.diff(np.asarray(segment)[:n]) != 0) + 1
    edges = [0, *cuts.tolist(), n]
    return list(zip(edges[:-1], edges[1:], strict=True))


def frame_interval(t: np.ndarray, bounds: list[tuple[int, int]]) -> float:
    """Median frame interval within segments (a gap is not a frame interval)."""
    steps = np.concatenate([np.diff(t[a:b]) for a, b in bounds])
    if not steps.size:  # every segment one frame long: the interval between them
        steps = np.diff(t)
    return float(np.median(steps)) if steps.size else float("nan")


def resample_segments(
    t: np.ndarray, x: np.ndarray, dt: float, bounds: list[tuple[int, int]], frame_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment resampling onto ``j * dt`` (t relative to the first frame); NaN in gaps."""
    t = np.asarray(t, dtype=np.float64) - t[0]
    grid = target_grid(t[-1], dt)
    if len(bounds) == 1:
        return grid, resample_onto(t, x, grid, dt, frame_s)
    out = np.full((grid.size, *x.shape[1:]), np.nan)
    for a, b in bounds:
        inside = (grid >= t[a] - 1e-9) & (grid <= t[b - 1] + 1e-9)
        if inside.any():
            out[inside] = resample_onto(t[a:b], x[a:b], grid[inside], dt, frame_s)
    return grid, out


def _nonzero_std(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    # a standard deviation at round-off level (a constant trace or prefix) counts as zero
    return std > 1e-9 * np.maximum(np.abs(mean), 1.0)


def normalise(x: np.ndarray, method: str) -> np.ndarray:
    """Per-column normalisation along axis 0 (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    if method == "none":
        return x.copy()
    if np.isnan(x).any():
        return _normalise_skipping_nan(x, method)
    if method == "zscore":
        mean, std = x.mean(axis=0), x.std(axis=0)
        ok = _nonzero_std(std, mean)
        return np.where(ok, (x - mean) / np.where(ok, std, 1.0), 0.0)
    if method == "causal":
        n = np.arange(1, x.shape[0] + 1).reshape(-1, *([1] * (x.ndim - 1)))
        shifted = x - x[:1]  # running sums of deviations from the first value lose less precision
        mean = np.cumsum(shifted, axis=0) / n
        std = np.sqrt(np.maximum(np.cumsum(shifted * shifted, axis=0) / n - mean**2, 0.0))
        ok = _nonzero_std(std, mean + x[:1])
        return np.where(ok, (shifted - mean) / np.where(ok, std, 1.0), 0.0)
    raise ConfigError(f"stages.homogenize.celegans.normalise: unknown method {method!r}")


def _normalise_skipping_nan(x: np.ndarray, method: str) -> np.ndarray:
    """``normalise`` over the non-NaN steps of each column (NaN stays NaN)."""
    valid = ~np.isnan(x)
    if method == "zscore":
        with np.errstate(invalid="ignore", divide="ignore"):
            count = valid.sum(axis=0)
            mean = np.where(valid, x, 0.0).sum(axis=0) / np.maximum(count, 1)
            std = np.sqrt(np.where(valid, (x - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count, 1))
        ok = _nonzero_std(std, mean)
        out = np.where(ok, (x - mean) / np.where(ok, std, 1.0), 0.0)
    elif method == "causal":
        first_row = np.argmax(valid, axis=0)
        first = x[first_row, np.arange(x.shape[1])] if x.ndim == 2 else x[first_row]
        shifted = np.where(valid, x - first, 0.0)
        n = np.maximum(np.cumsum(valid, axis=0), 1)
        mean = np.cumsum(shifted, axis=0) / n
        std = np.sqrt(np.maximum(np.cumsum(shifted * shifted, axis=0) / n - mean**2, 0.0))
        ok = _nonzero_std(std, mean + first)
        out = np.where(ok, (shifted - mean) / np.where(ok, std, 1.0), 0.0)
    else:
        raise ConfigError(f"stages.homogenize.celegans.normalise: unknown method {method!r}")
    return np.where(valid, out, np.nan)


def homogenize_traces(
    t: np.ndarray,
    x: np.ndarray,
    params: Mapping[str, Any],
    segment: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth, resample and normalise one worm's traces ``x(time, roi)``; returns (grid, traces).

    ``segment`` (time,): runs of equal numbers were acquired back to back; each run is smoothed
    and resampled on its own and the grid is NaN between runs (see the module docstring).
    """
    bounds = segment_bounds(segment, t.size)
    frame_s = frame_interval(t, bounds)
    if len(bounds) == 1:
        smoothed = smooth(x, params["smooth"], frame_s, params)
    else:
        smoothed = np.concatenate(
            [smooth(x[a:b], params["smooth"], frame_s, params) for a, b in bounds]
        )
    grid, resampled = resample_segments(t, smoothed, params["dt"], bounds, frame_s)
    return grid, normalise(resampled, params["normalise"])


# ----------------------------------------------------------------------------------- one worm


def homogenize_recording(path: str | Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """One ingest file -> the homogenized arrays of its worm (or the reason it was dropped)."""
    from neurodag.io.netcdf import open_dataset

    ds = open_dataset(path)
    worm = str(ds["worm"].values[0])
    n = int(ds["valid_length"].values[0])
    t = ds["time"].values[:n]
    segment = ds["segment"].values[0, :n] if "segment" in ds else None
    bounds = segment_bounds(segment, n)
    duration = sum(float(t[b - 1] - t[a]) for a, b in bounds) if n > 1 else 0.0
    if duration < params["min_duration_s"]:
        return {
            "worm": worm,
            "ingest_file": str(path),
            "dropped": f"{duration:.1f} s of data < min_duration_s {params['min_duration_s']}",
        }
    labeled = ds["labeled"].values[0]
    slots = np.flatnonzero(labeled)
    traces = np.concatenate(
        [ds["activity"].values[0, :n][:, slots], ds["unlabeled_activity"].values[0, :n]], axis=1
    )
    grid, out = homogenize_traces(t, traces, params, segment)
    activity = np.full((grid.size, labeled.size), np.nan, dtype=np.float32)
    activity[:, slots] = out[:, : slots.size]
    frame_s = frame_interval(t, bounds)
    result = {
        "worm": worm,
        "time": grid,
        "activity": activity,
        "labeled": labeled,
        "unlabeled_activity": out[:, slots.size :].astype(np.float32),
        "roi_label": [str(v) for v in ds["roi_label"].values[0]],
        "roi_flag": [str(v) for v in ds["roi_flag"].values[0]],
        "original_frame_s": frame_s,
        "original_length": n,
        "source_file": ds.attrs.get("source_file", str(path)),
        "ingest_file": str(path),
        "labels": {},
        "behavior": None,
    }
    if "behavior" in ds:
        values = ds["behavior"].values[0, :n].astype(np.float64)
        result["behavior"] = {
            "variable": [str(v) for v in ds["variable"].values],
            "units": json.loads(ds["behavior"].attrs.get("units", "{}")),
            "values": resample_segments(t, values, params["dt"], bounds, frame_s)[1],
        }
    for name, var in ds.data_vars.items():
        if var.dims != ("worm", "time") or var.dtype.kind in "biuf":
            continue  # the segment numbers; behaviour is behavior(worm, time, variable)
        # labels such as the stimulus: the value of the last frame at or before t_j
        index = np.searchsorted(t - t[0], grid + 1e-9, side="right") - 1
        result["labels"][name] = np.asarray(var.values[0, :n], dtype=object)[index]
    return result


# ------------------------------------------------------------------------------- all worms


def homogenize_celegans(
    spec: Mapping[str, Any],
    parameters: Mapping[str, Any] | None,
    ingest_files: list[Path],
    *,
    compute: Mapping[str, Any] | None = None,
    threads: int | None = None,
    memory_mb: int | None = None,
) -> xr.Dataset:
    """Homogenize every ingested worm of a dataset, in parallel, into one dataset."""
    from neurodag.compute import dask_client
    from neurodag.progress import progress

    params = {**stage_defaults("homogenize")["celegans"], **(parameters or {})}
    if not ingest_files:
        raise ConfigError("homogenize: no ingested recordings given (--input)")
    with dask_client(compute, threads=threads, memory_mb=memory_mb) as client:
        futures = client.map(
            homogenize_recording, [str(p) for p in ingest_files], params=params, pure=False
        )
        from distributed import as_completed

        by_path = {}
        for future in progress(as_completed(futures), desc="worms", total=len(futures)):
            result = future.result()
            by_path[result["ingest_file"]] = result
            future.release()
    results, dropped = [], {}
    for path in ingest_files:  # the input order, whatever order the tasks finished in
        result = by_path[str(path)]
        if "dropped" in result:
            dropped[result["worm"]] = result["dropped"]
            log.warning("dropped worm %s: %s", result["worm"], result["dropped"])
        else:
            results.append(result)
    if not results:
        raise ConfigError(
            f"homogenize: every worm was dropped ({dropped}); lower "
            "stages.homogenize.celegans.min_duration_s"
        )
    return _assemble(results, params, dropped)


def _behaviour_variables(results: list[dict]) -> tuple[list[str], dict[str, str]]:
    """Every behavioural variable of any worm (first-seen order) and its unit (one per name)."""
    variables: list[str] = []
    units: dict[str, str] = {}
    for r in results:
        if r["behavior"] is None:
            continue
        for name in r["behavior"]["variable"]:
            unit = r["behavior"]["units"].get(name, "")
            if name not in units:
                variables.append(name)
                units[name] = unit
            elif unit != units[name]:
                raise InputError(
                    r["ingest_file"],
                    f"behavior/{name}",
                    f"unit {unit!r}, but another worm has {units[name]!r}",
                )
    return variables, units


def _assemble(results: list[dict], params: Mapping[str, Any], dropped: dict[str, str]):
    n_worms = len(results)
    n_time = max(r["time"].size for r in results)
    n_roi = max(r["unlabeled_activity"].shape[1] for r in results)
    n_neuron = results[0]["activity"].shape[1]
    from neurodag.neurons import canonical_neurons

    activity = np.full((n_worms, n_time, n_neuron), np.nan, dtype=np.float32)
    unlabeled = np.full((n_worms, n_time, n_roi), np.nan, dtype=np.float32)
    roi_label = np.full((n_worms, n_roi), "", dtype=object)
    roi_flag = np.full((n_worms, n_roi), "", dtype=object)
    label_names = sorted({k for r in results for k in r["labels"]})
    labels = {name: np.full((n_worms, n_time), "", dtype=object) for name in label_names}
    variables, units = _behaviour_variables(results)
    behaviour = np.full((n_worms, n_time, len(variables)), np.nan)
    for w, r in enumerate(results):
        n = r["time"].size
        activity[w, :n] = r["activity"]
        k = r["unlabeled_activity"].shape[1]
        unlabeled[w, :n, :k] = r["unlabeled_activity"]
        roi_label[w, :k] = r["roi_label"]
        roi_flag[w, :k] = r["roi_flag"]
        for name, values in r["labels"].items():
            labels[name][w, :n] = values
        if r["behavior"] is not None:
            columns = [variables.index(v) for v in r["behavior"]["variable"]]
            rows = behaviour[w, :n]  # a view: filling it fills the worm's steps
            rows[:, columns] = r["behavior"]["values"]
    ds = xr.Dataset(
        {
            "activity": (("worm", "time", "neuron"), activity),
            "labeled": (("worm", "neuron"), np.stack([r["labeled"] for r in results])),
            "valid_length": ("worm", np.array([r["time"].size for r in results], dtype=np.int64)),
            "unlabeled_activity": (("worm", "time", "roi"), unlabeled),
            "roi_label": (("worm", "roi"), roi_label),
            "roi_flag": (("worm", "roi"), roi_flag),
            "original_frame_s": ("worm", np.array([r["original_frame_s"] for r in results])),
            "original_length": ("worm", np.array([r["original_length"] for r in results])),
            "source_file": ("worm", np.array([r["source_file"] for r in results], dtype=object)),
            **{name: (("worm", "time"), values) for name, values in labels.items()},
        },
        coords={
            "worm": [r["worm"] for r in results],
            "time": np.arange(n_time) * params["dt"],
            "neuron": list(canonical_neurons()),
            "roi": np.arange(n_roi),
        },
        attrs={
            "description": "homogenized C. elegans calcium activity (Simeon et al.)",
            "dt": params["dt"],
            "dropped": json.dumps(dropped),
        },
    )
    ds["time"].attrs["units"] = "s"
    if variables:
        ds["behavior"] = xr.DataArray(
            behaviour,
            dims=("worm", "time", "variable"),
            coords={"variable": variables},
            attrs={
                "units": json.dumps(units),
                "description": "behaviour resampled per segment like the activity (no smoothing, "
                "no normalisation; a 0/1 series becomes the fraction of each step); units: JSON "
                "{variable: unit}",
            },
        )
    ds["activity"].attrs["description"] = (
        f"{params['smooth']} smoothed, resampled, {params['normalise']} normalised"
    )
    log.info(
        "homogenized %d worms (%d dropped): %d time steps of %.4g s, %.1f labelled neurons/worm",
        n_worms,
        len(dropped),
        n_time,
        params["dt"],
        ds["labeled"].sum("neuron").mean().item(),
    )
    return ds
