"""A simulated Allen Visual Coding Neuropixels session, composed from planted pieces.

Each analysis stage plants the structure it must recover in a *piece* (an ``xr.Dataset``, see
``docs/data-model.md``): a continuous block ``counts(neuron, time)`` or a trial block
``rate``/``counts(trial, neuron, time)``, with regions, trial variables, images and ``true_*``
ground truth. The composer lays the pieces out one after another as stimulus blocks of one session
(gaps of ``gap_s`` between them, each block starting on a whole second), turns counts into spike
times (every spike placed uniformly inside its bin, away from the bin edges; rates are first drawn
as Poisson counts), adds Poisson background spikes to every unit outside its own piece's block, adds
units that AllenSDK's default filter drops (one failing criterion each), and writes it all in the
layout of the Allen session files (Siegle et al. 2021): units with quality metrics and
``peak_channel_id``, electrodes with CCF ``location`` grouped by probe, ``*_presentations``
interval tables with text parameter columns ("N/A" for missing), running speed and invalid times;
as in the real files, no stimulus templates: the images go to a folder per stimulus beside the
file, one image per frame (:func:`write_session`). The ground truth goes to ``truth.nc``: one
NetCDF group per piece with its ``true_*`` variables re-keyed by unit id and session time
(layout in ``docs/data-model.md``).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from neurodag.errors import ConfigError

log = logging.getLogger(__name__)

#: Registry of piece generators: name in config -> (module, function). Each takes ``seed=``.
PIECES = {
    "bicluster": ("neurodag.simulate.switching", "switching_population"),
    "mds": ("neurodag.simulate.functional_types", "functional_types"),
    "geometry": ("neurodag.simulate.geometry", "natural_scenes"),
    "latents": ("neurodag.simulate.lorenz", "lorenz_trials"),
    "demo_states": ("neurodag.simulate.demo_pieces", "spontaneous_states"),
    "demo_gratings": ("neurodag.simulate.demo_pieces", "static_gratings"),
}
#: Probe of each visual area in the Allen Neuropixels insertions; other regions go round the probes.
VISUAL_PROBES = {
    "VISam": "probeA",
    "VISpm": "probeB",
    "VISp": "probeC",
    "VISl": "probeD",
    "VISal": "probeE",
    "VISrl": "probeF",
}
PROBES = ("probeA", "probeB", "probeC", "probeD", "probeE", "probeF")
UNIT_ID_BASE, CHANNEL_ID_BASE, PROBE_ID_BASE = 950_000_000, 850_000_000, 760_000_000
#: Spikes sit in the middle of their bins, so rebinning at the piece's bin size is exact.
EDGE_MARGIN = 0.02
SAMPLE_RATE_HZ = 30_000.0
#: Unit-filter failures planted in the filtered units, in turn (column, value).
FILTER_FAILURES = (
    ("quality", "noise"),
    ("amplitude_cutoff", 0.3),
    ("presence_ratio", 0.8),
    ("isi_violations", 1.5),
)


@dataclass
class SimulatedSession:
    """Everything the NWB file holds, plus the ground truth."""

    session_id: str
    units: pd.DataFrame  # index unit id; region, probe, peak_channel_id, metrics, piece ...
    spike_times: np.ndarray  # flat, unit after unit (in ``units`` order), sorted within unit
    spike_index: np.ndarray  # end offsets
    electrodes: pd.DataFrame  # index channel id; location, probe, probe_id, local_index, ...
    probes: pd.DataFrame  # index probe name; probe_id
    presentations: dict[str, pd.DataFrame]  # stimulus -> table indexed by presentation id
    templates: dict[str, np.ndarray]
    running_speed: pd.DataFrame
    invalid_times: pd.DataFrame
    truth: xr.Dataset
    truth_groups: dict[str, xr.Dataset] = field(default_factory=dict)


def load_piece(name: str, options: dict | None, seed: int) -> xr.Dataset:
    """Build the registered piece ``name`` with its options (sizes) and a seed.

    The option ``stimulus_name`` is the composer's, not the generator's: it renames the piece's
    stimulus table (two pieces that both call theirs ``natural_scenes`` need distinct tables).
    """
    options = dict(options or {})
    stimulus_name = options.pop("stimulus_name", None)
    if name not in PIECES:
        raise ConfigError(f"simulate.pieces.{name}: unknown piece; known: {', '.join(PIECES)}")
    module_name, function = PIECES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"simulate.pieces.{name}: its generator {module_name} is not installed"
        ) from exc
    try:
        piece = getattr(module, function)(**{**options, "seed": seed})
    except (TypeError, ValueError) as exc:
        # the generator saw only the user's options (and the seed): the options are at fault
        raise ConfigError(f"simulate.pieces.{name}: {exc}") from exc
    if stimulus_name:
        piece.attrs["stimulus_name"] = str(stimulus_name)
    return piece


def neuron_regions(piece: xr.Dataset) -> np.ndarray:
    """``region(neuron)`` of a piece: the ``region`` coord, or ``neuron_region`` where the piece
    uses ``region`` as a dimension of its truth."""
    for name in ("region", "neuron_region"):
        if name in piece.variables and piece[name].dims == ("neuron",):
            return piece[name].values.astype(str)
    raise ConfigError(f"piece {piece.attrs.get('stimulus_name')!r}: no region(neuron) coordinate")


def _planted_counts(piece: xr.Dataset, rng: np.random.Generator) -> xr.DataArray:
    """The piece's spike counts: its ``counts``, or Poisson draws from ``rate`` (Hz)."""
    if "counts" in piece:
        counts = piece["counts"]
        if np.any(counts.values < 0):
            raise ConfigError(f"piece {piece.attrs['stimulus_name']!r}: negative counts")
        return counts.astype(np.int64)
    if "rate" in piece:
        lam = piece["rate"].values * float(piece.attrs["dt_s"])
        return piece["rate"].copy(data=rng.poisson(np.clip(lam, 0, None)).astype(np.int64))
    raise ConfigError(f"piece {piece.attrs.get('stimulus_name')!r}: neither counts nor rate")


def _spikes_from_counts(counts: np.ndarray, starts: np.ndarray, dt: float, rng) -> tuple:
    """Spike times for counts ``(..., neuron, bin)``: ``starts`` (...) is each row's onset.
    Returns (neuron index, time) of every spike."""
    nz = np.nonzero(counts)
    repeat = counts[nz]
    *lead, neuron, bin_ = (np.repeat(axis, repeat) for axis in nz)
    onset = starts[tuple(lead)] if lead else np.full(neuron.shape, float(starts))
    jitter = rng.uniform(EDGE_MARGIN, 1 - EDGE_MARGIN, neuron.size)
    return neuron, onset + (bin_ + jitter) * dt


def _trial_variables(piece: xr.Dataset) -> dict[str, np.ndarray]:
    """Stimulus parameters of a trial block: every non-truth variable or coord on ``trial`` only."""
    out = {}
    for name, var in piece.variables.items():
        if name != "trial" and var.dims == ("trial",) and not name.startswith("true_"):
            out[name] = var.values
    return out


def _allen_text(values: np.ndarray) -> np.ndarray:
    """Parameter values as the text the Allen tables store ("N/A" where missing)."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return np.array(["N/A" if np.isnan(v) else repr(float(v)) for v in values], dtype=object)
    return np.array([str(v) for v in values], dtype=object)


def _probe_layout(regions: list[str], channels_per_region: int, rng) -> pd.DataFrame:
    """Electrodes: each region a run of channels on its probe (Neuropixels 1.0 geometry)."""
    others = iter(PROBES * (len(regions) + 1))
    probe_of = {}
    for region in regions:
        probe_of[region] = VISUAL_PROBES.get(region) or next(others)
    rows = []
    for probe in PROBES:
        on_probe = [r for r in regions if probe_of[r] == probe]
        for depth, region in enumerate(on_probe):
            for k in range(channels_per_region):
                local = depth * channels_per_region + k
                rows.append(
                    {
                        "location": region,
                        "probe": probe,
                        "probe_id": PROBE_ID_BASE + PROBES.index(probe),
                        "local_index": local,
                        "probe_vertical_position": 20 * (local // 2),
                        "probe_horizontal_position": (11, 43, 27, 59)[local % 4],
                        "valid_data": True,
                        "x": 8000.0 + rng.normal(0, 50),
                        "y": 3000.0 - 20 * local + rng.normal(0, 5),
                        "z": 7000.0 + rng.normal(0, 50),
                    }
                )
    electrodes = pd.DataFrame(rows)
    electrodes.index = pd.Index(CHANNEL_ID_BASE + np.arange(len(rows)), name="channel_id")
    return electrodes


def _quality_metrics(n: int, rng) -> pd.DataFrame:
    """Metrics of units that pass AllenSDK's default filter."""
    return pd.DataFrame(
        {
            "quality": ["good"] * n,
            "amplitude_cutoff": rng.uniform(0.001, 0.09, n),
            "presence_ratio": rng.uniform(0.96, 0.99, n),
            "isi_violations": rng.uniform(0.0, 0.4, n),
            "snr": rng.uniform(1.5, 4.0, n),
            "amplitude": rng.uniform(50, 300, n),
        }
    )


def _clean_attrs(attrs: dict) -> dict:
    """Attributes NetCDF can store (numbers, text, lists of them); the rest as JSON text."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, str | int | float | np.number):
            out[key] = value
        elif isinstance(value, bool | np.bool_):
            out[key] = int(value)
        else:
            out[key] = json.dumps(value, default=str)
    return out


def compose_session(
    pieces: list[xr.Dataset],
    *,
    seed: int = 0,
    background_rate_hz: float = 0.5,
    gap_s: float = 1.0,
    n_filtered_units: int = 8,
    channels_per_region: int = 16,
    running_rate_hz: float = 60.0,
) -> SimulatedSession:
    """Lay the pieces out as stimulus blocks of one session and draw its spikes."""
    if not pieces:
        raise ConfigError("simulate.pieces: at least one piece is needed")
    rng = np.random.default_rng(seed)
    names = [p.attrs.get("stimulus_name") for p in pieces]
    for name, piece in zip(names, pieces, strict=True):
        if not name or "dt_s" not in piece.attrs:
            raise ConfigError(f"piece {name!r}: attrs stimulus_name and dt_s are required")
    if len(set(names)) != len(names):
        raise ConfigError(
            f"simulate.pieces: two pieces make the same stimulus table ({names}); give one a "
            "stimulus_name option"
        )

    # Units of the pieces, then the units the default filter will drop.
    unit_piece, unit_source, unit_region = [], [], []
    for name, piece in zip(names, pieces, strict=True):
        ids = piece["neuron"].values.astype(str)
        unit_piece += [name] * len(ids)
        unit_source += list(ids)
        unit_region += list(neuron_regions(piece))
    if len(set(unit_source)) != len(unit_source):
        raise ConfigError("simulate.pieces: neuron ids must be unique across pieces")
    regions = list(dict.fromkeys(unit_region))
    n_piece_units = len(unit_source)
    unit_piece += ["none"] * n_filtered_units
    unit_source += [""] * n_filtered_units
    unit_region += list(rng.choice(regions, n_filtered_units))
    n_units = len(unit_source)

    # Stimulus blocks, one per piece, each starting on a whole second.
    spikes_unit, spikes_time, presentations, templates, groups = [], [], {}, {}, {}
    block_of_unit = np.full((n_units, 2), np.nan)
    start, next_presentation, offset = math.ceil(gap_s), 0, 0
    for block, (name, piece) in enumerate(zip(names, pieces, strict=True)):
        dt = float(piece.attrs["dt_s"])
        planted = _planted_counts(piece, rng)
        n_neurons = piece.sizes["neuron"]
        units = np.arange(offset, offset + n_neurons)
        group = piece.drop_vars([v for v in ("rate", "counts", "image") if v in piece])
        if "trial" in planted.dims:
            planted = planted.transpose("trial", "neuron", "time")
            n_trials, _, n_time = planted.shape
            duration = n_time * dt
            step = duration + float(piece.attrs.get("iti_s", 0.0))
            onsets = start + np.arange(n_trials) * step
            neuron, time = _spikes_from_counts(planted.values, onsets, dt, rng)
            ids = next_presentation + np.arange(n_trials)
            table = pd.DataFrame(
                {
                    "start_time": onsets,
                    "stop_time": onsets + duration,
                    "stimulus_name": name,
                    "stimulus_block": block,
                },
                index=pd.Index(ids, name="presentation"),
            )
            for var, values in _trial_variables(piece).items():
                table[var] = _allen_text(values)
            stop = onsets[-1] + duration
            group = group.assign_coords(trial=ids).assign(
                start_time=("trial", onsets), planted_counts=planted.assign_coords(trial=ids)
            )
        else:
            planted = planted.transpose("neuron", "time")
            n_time = planted.sizes["time"]
            neuron, time = _spikes_from_counts(planted.values, np.float64(start), dt, rng)
            stop = start + n_time * dt
            ids = np.array([next_presentation])
            table = pd.DataFrame(
                {
                    "start_time": [float(start)],
                    "stop_time": [stop],
                    "stimulus_name": name,
                    "stimulus_block": block,
                },
                index=pd.Index(ids, name="presentation"),
            )
            session_time = start + (np.arange(n_time) + 0.5) * dt
            group = group.assign_coords(time=session_time).assign(
                planted_counts=planted.assign_coords(time=session_time)
            )
        presentations[name] = table
        if "image" in piece:
            templates[name] = piece["image"].transpose("frame", "y", "x").values.astype(float)
        spikes_unit.append(units[neuron])
        spikes_time.append(time)
        block_of_unit[units] = (start, stop)
        groups[name] = (group, units, {"block_start": float(start), "block_stop": float(stop)})
        next_presentation += len(ids)
        offset += n_neurons
        start = math.ceil(stop + gap_s)
    duration = float(start)

    # Background spikes: every unit, outside its own block.
    n_background = rng.poisson(background_rate_hz * duration, n_units)
    unit = np.repeat(np.arange(n_units), n_background)
    time = rng.uniform(0, duration, unit.size)
    lo, hi = block_of_unit[unit, 0], block_of_unit[unit, 1]
    outside = ~((time >= lo) & (time < hi))  # NaN bounds (filtered units) compare False
    spikes_unit.append(unit[outside])
    spikes_time.append(time[outside])
    unit = np.concatenate(spikes_unit)
    time = np.concatenate(spikes_time)

    # Units sorted as in Allen tables (by probe, then depth), with ids in that order.
    electrodes = _probe_layout(regions, channels_per_region, rng)
    peak = np.empty(n_units, dtype=np.int64)
    for region in regions:
        members = np.flatnonzero(np.asarray(unit_region) == region)
        channels = electrodes.index[electrodes["location"] == region].to_numpy()
        peak[members] = rng.choice(channels, members.size)
    local = electrodes.loc[peak, "local_index"].to_numpy()
    probe = electrodes.loc[peak, "probe"].to_numpy()
    order = np.lexsort((np.arange(n_units), local, probe))
    rank = np.empty(n_units, dtype=np.int64)
    rank[order] = np.arange(n_units)
    metrics = _quality_metrics(n_units, rng)
    for k, failing in enumerate(range(n_piece_units, n_units)):
        column, value = FILTER_FAILURES[k % len(FILTER_FAILURES)]
        metrics.loc[failing, column] = value
    units = metrics.assign(
        peak_channel_id=peak,
        cluster_id=rng.permutation(n_units),
        region=unit_region,
        probe=probe,
        piece=unit_piece,
        piece_neuron=unit_source,
    )
    units.index = pd.Index(UNIT_ID_BASE + rank, name="unit_id")
    units = units.iloc[order]
    unit_sorted = rank[unit]
    spike_order = np.lexsort((time, unit_sorted))
    # Stored at the 30 kHz sample resolution of the Neuropixels AP band.
    spike_times = np.round(time[spike_order] * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    spike_index = np.cumsum(np.bincount(unit_sorted, minlength=n_units))
    n_spikes = np.diff(spike_index, prepend=0)
    units["firing_rate"] = n_spikes / duration
    unit_ids = units.index.to_numpy()  # in table order
    id_of = np.empty(n_units, dtype=np.int64)  # composition index -> unit id
    id_of[order] = unit_ids

    probes = pd.DataFrame(
        {"probe_id": [PROBE_ID_BASE + PROBES.index(p) for p in PROBES]}, index=list(PROBES)
    )
    probes = probes[probes.index.isin(electrodes["probe"])]

    # Running speed (cm/s): a smoothed, rectified random walk; one invalid interval in a gap.
    n_samples = int(duration * running_rate_hz)
    walk = np.convolve(rng.normal(0, 1, n_samples), np.ones(60) / 60, mode="same")
    running = pd.DataFrame(
        {
            "time": np.arange(n_samples) / running_rate_hz,
            "speed": np.maximum(0.0, 40 * np.cumsum(walk) / np.sqrt(n_samples)),
        }
    )
    invalid = pd.DataFrame({"start_time": [0.1], "stop_time": [0.4], "tags": ["all_probes"]})

    truth = xr.Dataset(
        {
            "piece": ("neuron", units["piece"].to_numpy().astype(str)),
            "piece_neuron": ("neuron", units["piece_neuron"].to_numpy().astype(str)),
            "passes_default_filter": ("neuron", (units["piece"] != "none").to_numpy()),
            "n_spikes": ("neuron", n_spikes),
        },
        coords={
            "neuron": unit_ids.astype(str),
            "region": ("neuron", units["region"].to_numpy().astype(str)),
            "probe": ("neuron", units["probe"].to_numpy().astype(str)),
        },
        attrs={
            "pieces": json.dumps(names),
            "seed": seed,
            "session_duration_s": duration,
            "background_rate_hz": background_rate_hz,
        },
    )
    truth_groups = {}
    for name, (group, members, block_attrs) in groups.items():
        original = group["neuron"].values.astype(str)
        group = group.assign_coords(neuron=id_of[members].astype(str)).assign(
            piece_neuron=("neuron", original)
        )
        group.attrs = _clean_attrs({**group.attrs, **block_attrs})
        truth_groups[name] = group

    return SimulatedSession(
        session_id=f"simulated_{seed}",
        units=units,
        spike_times=spike_times,
        spike_index=spike_index,
        electrodes=electrodes,
        probes=probes,
        presentations=presentations,
        templates=templates,
        running_speed=running,
        invalid_times=invalid,
        truth=truth,
        truth_groups=truth_groups,
    )


def simulated_nwbfile(session: SimulatedSession, description: str, keywords: list[str], **extra):
    """The ``NWBFile`` of a simulated session, before its contents (both layouts share it)."""
    import datetime as dt

    from pynwb import NWBFile
    from pynwb.file import Subject

    return NWBFile(
        session_description=description,
        identifier=session.session_id,
        session_start_time=dt.datetime(2019, 1, 1, 9, 0, tzinfo=dt.UTC),
        session_id=session.session_id,
        institution="neurodag simulation",
        experimenter=["Simulator, Neurodag"],
        keywords=keywords,
        experiment_description="planted pieces: " + ", ".join(session.presentations),
        subject=Subject(
            subject_id="simulated",
            species="Mus musculus",
            sex="U",
            age="P100D",
            description="simulated mouse",
        ),
        **extra,
    )


def write_nwb(session: SimulatedSession, path: str | Path) -> Path:
    """Write the session in the Allen ecephys layout (core NWB types only), atomically."""
    import os

    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from pynwb import NWBHDF5IO, TimeSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.misc import Units

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nwb = simulated_nwbfile(
        session,
        "Simulated Allen Visual Coding Neuropixels session (neurodag)",
        ["simulation", "Neuropixels", "visual coding", "ground truth"],
        stimulus_notes="Visual Coding Neuropixels layout; see neurodag docs/data-model.md",
    )
    groups = {}
    for probe, row in session.probes.iterrows():
        device = nwb.create_device(name=probe, description="Neuropixels 1.0 (simulated, imec)")
        groups[probe] = nwb.create_electrode_group(
            name=probe,
            description=f"Neuropixels probe {probe}, probe_id {int(row['probe_id'])}",
            location=", ".join(
                dict.fromkeys(
                    session.electrodes.loc[session.electrodes["probe"] == probe, "location"]
                )
            ),
            device=device,
        )
    extra = [
        "probe_id",
        "local_index",
        "probe_vertical_position",
        "probe_horizontal_position",
        "valid_data",
    ]
    descriptions = {
        "probe_id": "id of the probe this channel is on",
        "local_index": "channel index on its probe, from the tip",
        "probe_vertical_position": "distance from the probe tip (um)",
        "probe_horizontal_position": "horizontal position on the shank (um)",
        "valid_data": "whether the channel records usable data",
    }
    for name in extra:
        nwb.add_electrode_column(name=name, description=descriptions[name])
    for channel, row in session.electrodes.iterrows():
        nwb.add_electrode(
            id=int(channel),
            location=row["location"],
            group=groups[row["probe"]],
            x=float(row["x"]),
            y=float(row["y"]),
            z=float(row["z"]),
            **{name: row[name] for name in extra},
        )

    from hdmf.common import ElementIdentifiers, VectorData, VectorIndex

    table = session.units
    spike_times = VectorData(
        name="spike_times",
        description="spike times (s)",
        data=H5DataIO(session.spike_times, compression="gzip"),
    )
    spike_index = VectorIndex(
        name="spike_times_index", data=session.spike_index.tolist(), target=spike_times
    )
    # Allen files also carry per-spike amplitudes (ragged) and mean waveforms (2-D); the reader
    # must pass over both.
    rng = np.random.default_rng(len(session.spike_times))
    amplitudes = VectorData(
        name="spike_amplitudes",
        description="amplitude of each spike (V)",
        data=H5DataIO(
            rng.gamma(9.0, 1e-5, session.spike_times.size).astype(np.float32), compression="gzip"
        ),
    )
    amplitude_index = VectorIndex(
        name="spike_amplitudes_index", data=session.spike_index.tolist(), target=amplitudes
    )
    samples = np.arange(82) / SAMPLE_RATE_HZ
    shape = -np.exp(-(((samples - 6e-4) / 2e-4) ** 2)) + 0.4 * np.exp(-(samples - 1e-3) / 5e-4) * (
        samples > 1e-3
    )
    waveform = VectorData(
        name="waveform_mean",
        description="mean waveform on the peak channel (uV), 82 samples at 30 kHz",
        data=np.outer(table["amplitude"].to_numpy(), shape).astype(np.float32),
    )
    units = Units(
        name="units",
        description="sorted units (simulated)",
        id=ElementIdentifiers(name="id", data=table.index.to_numpy().tolist()),
        columns=[spike_times, spike_index, amplitudes, amplitude_index, waveform],
        resolution=1 / SAMPLE_RATE_HZ,
    )
    columns = {
        "quality": "curation label (good / noise)",
        "amplitude_cutoff": "estimated fraction of missed spikes",
        "presence_ratio": "fraction of the session with spikes",
        "isi_violations": "refractory-period violation rate",
        "snr": "waveform signal-to-noise ratio",
        "amplitude": "waveform amplitude (uV)",
        "peak_channel_id": "id of the channel (electrodes row) with the largest waveform",
        "cluster_id": "Kilosort cluster id",
        "firing_rate": "mean firing rate over the session (Hz)",
    }
    for name, description in columns.items():
        values = table[name].to_numpy()
        data = values.astype(str).tolist() if values.dtype == object else values.tolist()
        units.add_column(name=name, description=description, data=data)
    nwb.units = units

    for name, frame in session.presentations.items():
        # Whole columns at once: add_row per presentation costs milliseconds each in hdmf.
        columns = [
            VectorData(
                name=column,
                description={
                    "start_time": "Start time of the presentation (s)",
                    "stop_time": "Stop time of the presentation (s)",
                }.get(column, f"stimulus parameter {column}"),
                data=(
                    frame[column].to_numpy(dtype=float).tolist()
                    if column in ("start_time", "stop_time")
                    else frame[column].to_numpy(dtype=np.int64).tolist()
                    if column == "stimulus_block"
                    else [str(v) for v in frame[column]]
                ),
            )
            for column in frame.columns
        ]
        # Allen tables also carry ragged tags (the reader passes over ragged columns).
        tags = VectorData(
            name="tags",
            description="user-defined tags",
            data=["stimulus_time_interval"] * len(frame),
        )
        tags_index = VectorIndex(
            name="tags_index", data=list(range(1, len(frame) + 1)), target=tags
        )
        intervals = TimeIntervals(
            name=f"{name}_presentations",
            description=f"presentations of the {name} stimulus",
            id=ElementIdentifiers(name="id", data=frame.index.to_numpy().tolist()),
            columns=[*columns, tags, tags_index],
        )
        nwb.add_time_intervals(intervals)

    running = nwb.create_processing_module(name="running", description="running speed")
    running.add(
        TimeSeries(
            name="running_speed",
            data=session.running_speed["speed"].to_numpy(),
            starting_time=float(session.running_speed["time"].iloc[0]),
            rate=round(float(1 / np.diff(session.running_speed["time"].to_numpy()[:2])[0]), 6),
            unit="cm/s",
            description="running speed of the mouse on the wheel",
        )
    )
    for _, row in session.invalid_times.iterrows():
        nwb.add_invalid_time_interval(
            start_time=float(row["start_time"]),
            stop_time=float(row["stop_time"]),
            tags=row["tags"].split(","),
        )

    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.nwb")
    try:
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def piece_entries(pieces: list) -> list[tuple[str, dict]]:
    """``simulate.pieces`` items (a name, or ``{name: options}``) as (name, options) pairs."""
    entries = []
    for item in pieces:
        if isinstance(item, str):
            entries.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            ((name, options),) = item.items()
            entries.append((name, dict(options or {})))
        else:
            raise ConfigError(f"simulate.pieces: {item!r} is neither a name nor {{name: options}}")
    return entries


def build_pieces(options: dict) -> list[xr.Dataset]:
    """The pieces a ``simulate:`` config entry asks for, each seeded from the session seed."""
    seed = int(options.get("seed", 0))
    return [
        load_piece(name, piece_options, seed=seed * 1000 + k)
        for k, (name, piece_options) in enumerate(piece_entries(options.get("pieces") or []))
    ]


def simulate(options: dict) -> SimulatedSession:
    """Compose the session of a ``simulate:`` config entry."""
    pieces = build_pieces(options)
    return compose_session(
        pieces,
        seed=int(options.get("seed", 0)),
        background_rate_hz=float(options.get("background_rate_hz", 0.5)),
        gap_s=float(options.get("gap_s", 1.0)),
        n_filtered_units=int(options.get("n_filtered_units", 8)),
    )


def image_folder(outdir: str | Path, stimulus: str) -> Path:
    """Where :func:`write_session` puts a stimulus's images: ``<outdir>/images/<stimulus>``."""
    return Path(outdir) / "images" / stimulus


def with_images_in(spec: dict, outdir: str | Path) -> dict:
    """The dataset entry ``spec`` with its ``images:`` pointing into ``outdir``, where
    :func:`write_session` wrote them (the workflow's outdir is results/simulate/{dataset}, the
    paths the config names; a script writing elsewhere reads them from there)."""
    from neurodag.io.stimulus_images import images_option

    return {**spec, "images": {s: str(image_folder(outdir, s)) for s in images_option(spec)}}


def check_images_option(session: SimulatedSession, spec: dict) -> None:
    """Each stimulus the dataset's ``images:`` names must be one the simulator has images of."""
    from neurodag.io.stimulus_images import images_option

    for stimulus in images_option(spec):
        if stimulus not in session.templates:
            raise ConfigError(
                f"images.{stimulus}: the simulated session has no images for this stimulus; "
                f"it has images for: {', '.join(session.templates) or 'none'}"
            )


def write_session(
    session: SimulatedSession, outdir: str | Path, parameters: dict, *, write=None
) -> list[Path]:
    """``session.nwb`` and ``truth.nc`` (one group per piece) in ``outdir``; ``write(session,
    path)`` writes the NWB file (default :func:`write_nwb`, the Allen layout). The Allen layout's
    stimulus images stay out of the session file, as in the real files: one 32-bit float TIFF
    per frame in :func:`image_folder` (``<stimulus>_<frame>.tiff``), read through the dataset's
    ``images:`` option."""
    from neurodag.io.netcdf import write_dataset

    outdir = Path(outdir)
    nwb_path = (write or write_nwb)(session, outdir / "session.nwb")
    if write is None:
        from neurodag.io.stimulus_images import write_folder

        for name, images in session.templates.items():
            log.info("%s: %d images -> %s", name, len(images), image_folder(outdir, name))
            write_folder(images, image_folder(outdir, name), name)
    truth_path = write_dataset(
        session.truth,
        outdir / "truth.nc",
        stage="simulate",
        parameters=parameters,
        groups=session.truth_groups,
    )
    return [nwb_path, truth_path]
