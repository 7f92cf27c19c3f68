"""C. elegans whole-brain calcium imaging in NWB: reader (format ``celegans-nwb``) and writer.

Two layouts are read, both through h5py so that no NWB extension has to be installed:

- the NeuroPAL / NWBelegans convention (Sprague et al. 2024, "Unifying community whole-brain
  imaging datasets enables robust neuron identification and reveals determinants of neuron
  position in C. elegans"; ndx-multichannel-volume): processing module ``CalciumActivity`` holding
  a ``RoiResponseSeries`` (``SignalCalciumImResponseSeries``) and a ``NeuronIDs`` group whose
  ``labels`` dataset names the neuron of each ROI (row order of the segmentation);
- plain NWB core: any ``RoiResponseSeries`` whose ``rois`` region points at a
  ``PlaneSegmentation`` with a neuron-label column (``ID_labels``, ``neuron_label``, ``label`` or
  ``neuron_id``).

An empty label means an unlabelled ROI. The writer (used by ``neurodag simulate celegans``) writes
the plain-core layout inside a ``CalciumActivity`` module with the NWBelegans names, so files open
in pynwb without any extension, records stimulus epochs in the NWB ``epochs`` table and the
behaviour as one ``TimeSeries`` per variable in a ``BehavioralTimeSeries`` of the ``behavior``
processing module (the NWB best-practice place for behaviour).

Behaviour is read from every ``TimeSeries`` (or subtype, such as ``SpatialSeries``) under the
``behavior`` processing module (any letter case, ``behaviour`` too), named by the series (columns
of a 2-D series as ``<name>_0``, ``<name>_1``, ...), with its ``unit``. A series on the calcium
frames' own timestamps is taken as is; one on another clock is brought onto the frames causally:
frame ``k`` gets the mean of the samples in ``(t[k-1], t[k]]`` (the first frame: one frame
interval back), or, where no sample falls there, the linear interpolation at ``t[k]``; NaN outside
the series' time span.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from neurodag.errors import InputError

CALCIUM_MODULE = "CalciumActivity"
SERIES_NAME = "SignalCalciumImResponseSeries"
SEGMENTATION_NAME = "CalciumSeriesSegmentation"
PLANE_NAME = "NeuronSegmentation"
LABEL_COLUMNS = ("ID_labels", "neuron_label", "label", "neuron_id")
BEHAVIOUR_MODULE = "behavior"
TIME_SERIES_TYPES = ("TimeSeries", "SpatialSeries")


@dataclass
class CalciumRecording:
    """One worm's traces as a reader returns them (before mapping names to the canonical axis)."""

    traces: np.ndarray  # (time, roi), fluorescence or dF/F
    timestamps: np.ndarray  # (time,), seconds
    labels: list[str]  # (roi,), "" = unlabelled
    identifier: str = ""
    behaviour: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (time,)
    behaviour_units: dict[str, str] = field(default_factory=dict)  # name -> unit ("" = unknown)
    # (time,) int: frames of one segment were acquired back to back; between segments the
    # acquisition skipped frames (a gap in time that no stage interpolates over). None: one segment.
    segment: np.ndarray | None = None
    epochs: list[tuple[float, float, str]] = field(default_factory=list)  # (start, stop, name)
    description: str = ""


# ----------------------------------------------------------------------------------------- writing


def write_celegans_nwb(
    recording: CalciumRecording,
    path: str | Path,
    *,
    session_start: dt.datetime,
    roi_positions: np.ndarray | None = None,
    subject_id: str = "worm",
    frame_rate_hz: float | None = None,
) -> Path:
    """Write one worm as NWB (core types only, NWBelegans names). Returns the path."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject
    from pynwb.ophys import ImageSegmentation, OpticalChannel, PlaneSegmentation, RoiResponseSeries

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_time, n_roi = recording.traces.shape
    nwb = NWBFile(
        session_description=recording.description or "C. elegans whole-brain calcium imaging",
        identifier=recording.identifier or path.stem,
        session_start_time=session_start,
        experiment_description="neurodag simulation: rate model on the consensus connectome",
        lab="neurodag",
        experimenter=["Simulator, Neurodag"],  # DANDI "Last, First" form
        institution="neurodag",
        keywords=["C. elegans", "whole-brain imaging", "simulation"],
    )
    nwb.subject = Subject(
        subject_id=subject_id,
        species="Caenorhabditis elegans",
        sex="XX",  # hermaphrodite (nwbinspector: XX or XO for C. elegans)
        age="P4D",
        description="simulated young adult hermaphrodite",
        strain="simulated NeuroPAL; GCaMP",
    )
    device = nwb.create_device(name="Microscope", description="simulated spinning-disk confocal")
    channel = OpticalChannel(name="GCaMP", description="GCaMP emission", emission_lambda=513.0)
    plane = nwb.create_imaging_plane(
        name="WholeBrainVolume",
        optical_channel=channel,
        description="whole head volume",
        device=device,
        excitation_lambda=488.0,
        indicator="GCaMP",
        location="head ganglia",
        imaging_rate=float(frame_rate_hz) if frame_rate_hz else None,
    )
    module = nwb.create_processing_module(CALCIUM_MODULE, "calcium traces of segmented neurons")
    segmentation = ImageSegmentation(name=SEGMENTATION_NAME)
    module.add(segmentation)
    if roi_positions is None:
        roi_positions = np.zeros((n_roi, 3))
    # Columns built in bulk: add_roi per ROI costs ~10 ms each in hdmf's argument checking.
    voxels = VectorData(
        name="voxel_mask",
        description="neuron centre (x, y, z, weight)",
        data=[(float(x), float(y), float(z), 1.0) for x, y, z in roi_positions],
    )
    seg = PlaneSegmentation(
        name=PLANE_NAME,
        description="one voxel per neuron centre; ID_labels holds the NeuroPAL identity",
        imaging_plane=plane,
        id=list(range(n_roi)),
        columns=[
            voxels,
            VectorIndex(name="voxel_mask_index", data=list(range(1, n_roi + 1)), target=voxels),
            VectorData(
                name="ID_labels",
                description="neuron identity of the ROI ('' = unlabelled; '?' suffix = uncertain)",
                data=list(recording.labels),
            ),
        ],
    )
    segmentation.add_plane_segmentation(seg)
    region = seg.create_roi_table_region(description="all ROIs", region=list(range(n_roi)))
    module.add(
        RoiResponseSeries(
            name=SERIES_NAME,
            description="GCaMP fluorescence of each ROI",
            data=np.asarray(recording.traces, dtype=np.float32),
            rois=region,
            unit="a.u.",
            timestamps=np.asarray(recording.timestamps, dtype=np.float64),
        )
    )
    if recording.behaviour:
        from pynwb import TimeSeries
        from pynwb.behavior import BehavioralTimeSeries

        behaviour_module = nwb.create_processing_module(
            BEHAVIOUR_MODULE, "behaviour of the worm at each calcium frame"
        )
        container = BehavioralTimeSeries(name="BehavioralTimeSeries")
        for name, values in recording.behaviour.items():
            container.add_timeseries(
                TimeSeries(
                    name=name,
                    description=f"{name} at each calcium frame",
                    data=np.asarray(values, dtype=np.float64),
                    unit=recording.behaviour_units.get(name) or "n.a.",
                    timestamps=np.asarray(recording.timestamps, dtype=np.float64),
                )
            )
        behaviour_module.add(container)
    if recording.epochs:
        nwb.add_epoch_column("stimulus", "stimulus presented during the epoch")
        for start, stop, name in recording.epochs:
            nwb.add_epoch(start_time=float(start), stop_time=float(stop), stimulus=name)
    tmp = path.with_name(f".{path.stem}.tmp.nwb")  # pynwb wants the .nwb suffix
    with NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb)
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------------------- reading


def _text(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _series_time(group: h5py.Group, n_time: int, path: Path, name: str) -> np.ndarray:
    if "timestamps" in group:
        return np.asarray(group["timestamps"][:], dtype=np.float64)
    if "starting_time" in group:
        start = group["starting_time"]
        rate = start.attrs.get("rate")
        if rate is None or not rate > 0:
            raise InputError(path, f"{name}/starting_time", "no positive 'rate' attribute")
        return float(start[()]) + np.arange(n_time) / float(rate)
    raise InputError(path, name, "neither timestamps nor starting_time")


def _find_series(f: h5py.File) -> list[str]:
    """Paths of every RoiResponseSeries under processing/ (NWBelegans one first)."""
    found: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and _text([obj.attrs.get("neurodata_type", "")])[0] in (
            "RoiResponseSeries",
        ):
            found.append(name)

    if "processing" in f:
        f["processing"].visititems(lambda n, o: visit(f"processing/{n}", o))
    preferred = f"processing/{CALCIUM_MODULE}/{SERIES_NAME}"
    return sorted(found, key=lambda n: (n != preferred, n))


def _labels_for(f: h5py.File, series: h5py.Group, path: Path, name: str) -> list[str]:
    """ROI labels: the NWBelegans NeuronIDs group, else a label column of the ROI table."""
    n_roi = series["data"].shape[1]
    module = series.parent
    if "NeuronIDs" in module and "labels" in module["NeuronIDs"]:
        labels = _text(module["NeuronIDs"]["labels"][:])
        if len(labels) != n_roi:
            raise InputError(
                path, f"{module.name}/NeuronIDs/labels", f"{len(labels)} labels for {n_roi} ROIs"
            )
        return labels
    if "rois" not in series:
        raise InputError(path, f"{name}/rois", "missing: cannot tell which neuron each trace is")
    rois = series["rois"]
    table_ref = rois.attrs.get("table")
    if table_ref is None:
        raise InputError(path, f"{name}/rois", "no 'table' reference to the ROI table")
    table = f[table_ref]
    column = next((c for c in LABEL_COLUMNS if c in table), None)
    if column is None:
        raise InputError(
            path,
            table.name,
            f"no neuron-label column (looked for {', '.join(LABEL_COLUMNS)})",
        )
    all_labels = _text(table[column][:])
    rows = np.asarray(rois[:], dtype=np.int64)
    if rows.size != n_roi or (rows.size and (rows.min() < 0 or rows.max() >= len(all_labels))):
        raise InputError(path, f"{name}/rois", "ROI rows do not match the trace columns")
    return [all_labels[r].strip() for r in rows]


def _epochs(f: h5py.File) -> list[tuple[float, float, str]]:
    if "intervals/epochs" not in f:
        return []
    group = f["intervals/epochs"]
    starts, stops = group["start_time"][:], group["stop_time"][:]
    if "stimulus" in group:
        names = _text(group["stimulus"][:])
    else:
        names = [f"epoch{k}" for k in range(len(starts))]
    return [(float(a), float(b), n) for a, b, n in zip(starts, stops, names, strict=True)]


def align_to_frames(ts: np.ndarray, values: np.ndarray, frame_t: np.ndarray) -> np.ndarray:
    """A series sampled at ``ts`` on the frames at ``frame_t`` (see the module docstring)."""
    if ts.size == frame_t.size and np.allclose(ts, frame_t, rtol=0, atol=1e-9):
        return values.astype(np.float64)
    values = np.asarray(values, dtype=np.float64)
    first = frame_t[0] - (frame_t[1] - frame_t[0] if frame_t.size > 1 else 0.0)
    edges = np.concatenate([[first], frame_t])
    index = np.searchsorted(ts, edges, side="right")  # samples in (edge[k], edge[k+1]]
    finite = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    n = counts[index[1:]] - counts[index[:-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (sums[index[1:]] - sums[index[:-1]]) / n
    if finite.sum() >= 2:
        between = np.interp(frame_t, ts[finite], values[finite])
    else:
        between = np.full(frame_t.size, values[finite][0] if finite.any() else np.nan)
    out = np.where(n > 0, mean, between)
    out[(frame_t < ts[0]) | (frame_t > ts[-1])] = np.nan
    return out


def _behaviour_series(f: h5py.File) -> dict[str, str]:
    """{name: HDF5 path} of every TimeSeries under the behaviour processing module."""
    if "processing" not in f:
        return {}
    modules = [m for m in f["processing"] if m.lower() in ("behavior", "behaviour")]
    found: dict[str, str] = {}
    for module in modules:

        def visit(name, obj, module=module):
            kind = _text([obj.attrs.get("neurodata_type", "")])[0]
            if isinstance(obj, h5py.Group) and kind in TIME_SERIES_TYPES and "data" in obj:
                found.setdefault(name.split("/")[-1], f"processing/{module}/{name}")

        f["processing"][module].visititems(visit)
    return found


def read_behaviour(
    f: h5py.File, frame_t: np.ndarray, path: Path, names: list[str] | None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Behaviour on the calcium frames: ``names`` (each must be in the file), or all there is."""
    series = _behaviour_series(f)
    values: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for name, where in series.items():
        group = f[where]
        data = np.asarray(group["data"][:])
        if data.dtype.kind not in "biuf" or data.ndim not in (1, 2) or data.shape[0] < 1:
            raise InputError(
                path, f"{where}/data", f"expected numeric (time,) data, got {data.shape}"
            )
        ts = _series_time(group, data.shape[0], path, where)
        if ts.shape != (data.shape[0],):
            raise InputError(
                path, f"{where}/timestamps", f"{ts.size} timestamps for {data.shape[0]} samples"
            )
        if ts.size > 1 and not np.all(np.diff(ts) > 0):
            raise InputError(path, f"{where}/timestamps", "not strictly increasing")
        unit = _text([group["data"].attrs.get("unit", "")])[0]
        unit = "" if unit in ("n.a.", "n/a") else unit
        columns = (
            {name: data}
            if data.ndim == 1
            else (
                {name: data[:, 0]}
                if data.shape[1] == 1
                else {f"{name}_{k}": data[:, k] for k in range(data.shape[1])}
            )
        )
        for key, column in columns.items():
            values[key] = align_to_frames(ts, column, frame_t)
            units[key] = unit
    if names is None:
        return values, units
    missing = [n for n in names if n not in values]
    if missing:
        raise InputError(
            path,
            f"processing/{BEHAVIOUR_MODULE}/{missing[0]}",
            f"missing, but stages.ingest.celegans.behavior names it (the file has: "
            f"{', '.join(values) or 'no behavioural TimeSeries'})",
        )
    return {n: values[n] for n in names}, {n: units[n] for n in names}


def read_celegans_nwb(path: str | Path, behaviour: list[str] | None = None) -> CalciumRecording:
    """Read one worm's traces, ROI labels, epochs and behaviour from an NWB file (either layout).

    ``behaviour``: the behavioural TimeSeries to read (each must be in the file); None: all.
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise InputError(path, None, f"not a readable NWB/HDF5 file ({exc})") from exc
    try:
        with f:
            series_paths = _find_series(f)
            if not series_paths:
                raise InputError(path, "processing", "no RoiResponseSeries found")
            name = series_paths[0]
            series = f[name]
            data = np.asarray(series["data"][:])
            if data.ndim != 2:
                raise InputError(path, f"{name}/data", f"expected (time, roi), got {data.shape}")
            timestamps = _series_time(series, data.shape[0], path, name)
            if timestamps.shape[0] != data.shape[0]:
                raise InputError(
                    path,
                    f"{name}/timestamps",
                    f"{timestamps.shape[0]} timestamps for {data.shape[0]} frames",
                )
            labels = _labels_for(f, series, path, name)
            identifier = _text([f["identifier"][()]])[0] if "identifier" in f else path.stem
            epochs = _epochs(f)
            values, units = read_behaviour(f, timestamps, path, behaviour)
    except (OSError, KeyError) as exc:  # truncated file: h5py fails when data is read
        raise InputError(path, None, f"corrupt or truncated NWB file ({exc})") from exc
    return CalciumRecording(
        traces=data,
        timestamps=timestamps,
        labels=labels,
        identifier=identifier,
        epochs=epochs,
        behaviour=values,
        behaviour_units=units,
    )
