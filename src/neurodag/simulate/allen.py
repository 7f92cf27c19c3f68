"""A simulated Allen Visual Coding Neuropixels session, composed from planted pieces.

Each analysis stage plants the structure it must recover in a *piece* (an ``xr.Dataset``, see
``docs/data-model.md``): a continuous block ``counts(neuron, time)`` or a trial block
``rate``/``counts(trial, neuron, time)``, with regions, trial variables, images and ``true_*``
ground truth. The composer lays the pieces out one after another as stimulus blocks of one session
(gaps of ``gap_s`` between them, each block starting on a whole second), turns counts into spike
times (every spike placed uniformly inside its bin, away from the bin edges; rates are first drawn
as Poisson counts), adds Poisson background spikes to every unit outside its own piece's block, adds
units that AllenSDK's default filter drops (one failing criterion each, the peak channel's
``valid_data`` and structure acronym among them), and writes it all in the layout of the Allen
session files (Siegle et al. 2021) as AllenSDK's ``write_nwb`` does (``allensdk/brain_observatory/
ecephys/write_nwb``): the ``ndx-aibs-ecephys`` probe, electrode-group and specimen types with
their namespace cached in the file, every channel of each probe (CCF ``location``, empty above
the brain; reference channels ``valid_data`` False) with AllenSDK's electrode columns, units with
AllenSDK's columns and dtypes (quality and waveform metrics, ``peak_channel_id``, ragged
``spike_times``, ``spike_amplitudes`` and ``waveform_mean``), ``*_presentations`` interval tables
as AllenSDK writes them (ids per table, float and text parameter columns, no ``stimulus_block``
in ``spontaneous``, whose rows are the parts of a spontaneous piece and sweeps in the other
gaps), running speed with timestamps and invalid times tagged ``[scope, id, label]``;
as in the real files, no stimulus templates: the images go to a folder per stimulus beside the
file, one image per frame (:func:`write_session`). The ground truth goes to ``truth.nc``: one
NetCDF group per piece with its ``true_*`` variables re-keyed by unit id and session time
(layout in ``docs/data-model.md``).
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import math
import warnings
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
#: ``piece`` of the filler units (background spikes only, passing the unit filter).
FILLER = "background"
LFP_SAMPLE_RATE_HZ = 1250.0  # 2500 Hz LFP band, temporally subsampled by 2 (AllenSDK write_nwb)
ECEPHYS_NAMESPACE = "ndx-aibs-ecephys"  # AllenSDK's NWB extension (namespace version 0.2.0)
#: Every channel of a Neuropixels probe is in the electrodes table, as in the Allen files.
CHANNELS_PER_PROBE = 384
#: Channels at the top of each probe, above the brain surface (empty structure acronym).
OUT_OF_BRAIN_CHANNELS = 48
#: Reference sites of the Neuropixels 3a probes of the Visual Coding recordings: valid_data False
#: (the Phase 3A channel map's reference channels, cortex-lab/neuropixels wiki "About Neuropixels").
REFERENCE_CHANNELS = (36, 75, 112, 151, 188, 227, 264, 303, 340, 379)
SPECIMEN_STRAIN = "C57BL/6J"
WAVEFORM_SAMPLES = 82  # mean waveform length (samples at 30 kHz), as in the Allen files
#: Unit-filter failures planted in the filtered units, in turn (column, value): AllenSDK's default
#: unit filter (``EcephysNwbSessionApi`` / ``Probes.get_units_table``), one criterion each. The
#: last two put the unit's peak channel on a reference site (``valid_data`` False) or above the
#: brain (empty structure acronym).
FILTER_FAILURES = (
    ("quality", "noise"),
    ("amplitude_cutoff", 0.3),
    ("presence_ratio", 0.8),
    ("isi_violations", 1.5),
    ("valid_data", False),
    ("structure_acronym", ""),
)
#: The units-table columns of the Allen session files, in their order, with their descriptions
#: (AllenSDK ``write_nwb`` ``Unit`` schema; ragged spike_times, spike_amplitudes and waveform_mean
#: follow).
UNIT_COLUMNS = {
    "peak_channel_id": "id of the channel (electrodes row) with the largest waveform",
    "local_index": "within-probe index of this unit",
    "cluster_id": "within-probe identifier of this unit (Kilosort cluster)",
    "quality": "curation label (good / noise)",
    "firing_rate": "mean firing rate over the session (Hz)",
    "snr": "waveform signal-to-noise ratio",
    "isi_violations": "refractory-period violation rate",
    "presence_ratio": "fraction of the session with spikes",
    "amplitude_cutoff": "estimated fraction of missed spikes",
    "isolation_distance": "Mahalanobis isolation distance",
    "l_ratio": "L-ratio cluster quality",
    "d_prime": "linear discriminant d-prime",
    "nn_hit_rate": "nearest-neighbours hit rate",
    "nn_miss_rate": "nearest-neighbours miss rate",
    "max_drift": "largest drift of the unit's position (um)",
    "cumulative_drift": "cumulative drift of the unit's position (um)",
    "silhouette_score": "cluster silhouette score",
    "waveform_duration": "trough-to-peak duration of the mean waveform (ms)",
    "waveform_halfwidth": "half-width of the mean waveform (ms)",
    "PT_ratio": "peak-to-trough ratio of the mean waveform",
    "repolarization_slope": "repolarization slope of the mean waveform",
    "recovery_slope": "recovery slope of the mean waveform",
    "amplitude": "amplitude of the mean waveform (uV)",
    "spread": "spatial spread of the waveform along the probe (um)",
    "velocity_above": "propagation velocity above the soma (s/m)",
    "velocity_below": "propagation velocity below the soma (s/m)",
}
#: The electrodes-table columns the Allen files add to NWB's (AllenSDK write_nwb
#: ``add_ecephys_electrode_columns``).
ELECTRODE_COLUMNS = {
    "probe_vertical_position": "Length-wise position of electrode/channel on device (microns)",
    "probe_horizontal_position": "Width-wise position of electrode/channel on device (microns)",
    "probe_id": "The unique id of this electrode's/channel's device",
    "local_index": "The local index of electrode/channel on device",
    "valid_data": "Whether data from this electrode/channel is usable",
}


@dataclass
class SimulatedSession:
    """Everything the NWB file holds, plus the ground truth."""

    session_id: str
    units: pd.DataFrame  # index unit id; region, probe, peak_channel_id, metrics, piece ...
    trains: SpikeTrains  # the spikes, unit after unit (in ``units`` order), drawn on demand
    electrodes: pd.DataFrame  # index channel id; location, probe, probe_id, local_index, ...
    probes: pd.DataFrame  # index probe name; probe_id
    presentations: dict[str, pd.DataFrame]  # stimulus -> table, ids 0, 1, ... per table
    templates: dict[str, np.ndarray]
    running_speed: pd.DataFrame
    invalid_times: pd.DataFrame
    truth: xr.Dataset
    truth_groups: dict[str, xr.Dataset] = field(default_factory=dict)

    @property
    def spike_index(self) -> np.ndarray:
        """End offset of each unit's spikes in the flat spike-time array."""
        return self.trains.index

    @property
    def spike_times(self) -> np.ndarray:
        """Every spike time, unit after unit (materialised: for small sessions and tests; the
        NWB writer streams :meth:`SpikeTrains.chunk` instead)."""
        return self.trains.chunk(0, self.trains.n_spikes)


@dataclass
class SpikeTrains:
    """The spike trains of a simulated session, each unit's drawn when asked for.

    A unit's spikes are its planted ones (in memory: the pieces are small) and its Poisson
    background, whose count is drawn up front (so the ragged index is known before any spike
    time) and whose times are drawn from a generator seeded by (session seed, unit): the same
    unit always gets the same spikes, so a writer can stream any range of the flat array in
    bounded memory, however long the session (a real-size session holds 1e8 spikes).
    """

    planted_times: np.ndarray  # planted spikes, unit after unit (table order), sorted per unit
    planted_index: np.ndarray  # end offsets into planted_times
    n_background: np.ndarray  # background spikes of each unit
    exclude: list[np.ndarray]  # per unit, (block, 2): its own blocks [start, stop), sorted
    duration: float
    seed: int
    index: np.ndarray = field(init=False)  # end offsets of every unit's spikes

    def __post_init__(self):
        planted = np.diff(self.planted_index, prepend=0)
        self.index = np.cumsum(planted + self.n_background)
        self._cache: tuple[int, np.ndarray, np.ndarray] | None = None

    @property
    def n_spikes(self) -> int:
        return int(self.index[-1]) if len(self.index) else 0

    def unit(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Spike times (sorted, on the 30 kHz sample grid) and amplitudes (V) of one unit."""
        if self._cache is not None and self._cache[0] == position:
            return self._cache[1], self._cache[2]
        rng = np.random.default_rng([self.seed, 0x5B1E, position])
        blocks = self.exclude[position]  # sorted, disjoint
        n = int(self.n_background[position])
        # uniform over the session outside the unit's own blocks: uniform over the session with
        # the blocks cut out, then each block's length added back to the times past its start
        background = rng.uniform(0.0, self.duration - np.sum(blocks[:, 1] - blocks[:, 0]), n)
        for lo, hi in blocks:
            background[background >= lo] += hi - lo
        first = self.planted_index[position - 1] if position else 0
        planted = self.planted_times[first : self.planted_index[position]]
        times = np.concatenate([planted, background])
        times.sort()
        # Stored at the 30 kHz sample resolution of the Neuropixels AP band.
        times = np.round(times * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
        amplitudes = rng.gamma(9.0, 1e-5, times.size)
        self._cache = (position, times, amplitudes)
        return times, amplitudes

    def chunk(self, start: int, stop: int, amplitudes: bool = False) -> np.ndarray:
        """Positions ``[start, stop)`` of the flat spike-time (or amplitude) array."""
        parts = []
        first = int(np.searchsorted(self.index, start, side="right"))
        position = start
        for unit in range(first, len(self.index)):
            if position >= stop:
                break
            unit_start = int(self.index[unit - 1]) if unit else 0
            values = self.unit(unit)[1 if amplitudes else 0]
            parts.append(values[position - unit_start : stop - unit_start])
            position = int(self.index[unit])
        return np.concatenate(parts) if parts else np.zeros(0)


def _streamed(trains: SpikeTrains, amplitudes: bool, chunk: int = 1 << 18):
    """An HDF5 writer's iterator over the flat spike times (or amplitudes) of ``trains``, a buffer
    of 16 chunks at a time: the full array is never in memory."""
    from hdmf.data_utils import GenericDataChunkIterator

    class Ragged(GenericDataChunkIterator):
        def _get_data(self, selection):
            return trains.chunk(selection[0].start, selection[0].stop, amplitudes)

        def _get_maxshape(self):
            return (trains.n_spikes,)

        def _get_dtype(self):
            return np.dtype(np.float64)

    n = max(1, trains.n_spikes)
    chunk = min(chunk, n)
    # a buffer may not exceed the data; below that, it must be whole chunks
    return Ragged(chunk_shape=(chunk,), buffer_shape=(min(16 * chunk, n),))


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


def _allen_values(values: np.ndarray) -> np.ndarray:
    """Parameter values with the dtypes AllenSDK writes: numbers as float (NaN where missing),
    anything else as text ("N/A" where missing)."""
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    return np.array(["N/A" if v is None else str(v) for v in values], dtype=object)


SPONTANEOUS = "spontaneous"
#: A continuous spontaneous piece is cut into at most this many more parts (see _schedule).
SPONTANEOUS_PARTS = 2


def _presentation_table(name: str, start, stop, block: int) -> pd.DataFrame:
    """A stimulus table as the Allen files hold it: ids 0, 1, ... per table, ``stimulus_block``
    (float, as written by AllenSDK) except in ``spontaneous`` (whose table has no such column),
    ``stimulus_index`` likewise."""
    table = pd.DataFrame(
        {
            "start_time": np.asarray(start, dtype=float),
            "stop_time": np.asarray(stop, dtype=float),
            "stimulus_name": name,
        }
    )
    if name != SPONTANEOUS:
        table["stimulus_block"] = float(block)
        table["stimulus_index"] = float(block)
    return _table_ids(table)


def _table_ids(table: pd.DataFrame) -> pd.DataFrame:
    table = table.sort_values("start_time", kind="stable").reset_index(drop=True)
    table.index.name = "id"
    return table


def _schedule(names: list[str], pieces: list[xr.Dataset]) -> list[tuple[str, int, tuple | None]]:
    """The blocks in session order, ``(stimulus, piece index, (first bin, end bin) or None)``:
    every piece once, in config order, except a continuous ``spontaneous`` piece, which is cut
    into up to ``1 + SPONTANEOUS_PARTS`` parts, the first half in its place and the rest after
    each of the next pieces, as a real session has spontaneous sweeps between its stimulus blocks
    (each part in whole seconds where the piece's bin size divides a second)."""
    entries, pending = [], []
    for k, (name, piece) in enumerate(zip(names, pieces, strict=True)):
        planted = piece["counts"] if "counts" in piece else piece.get("rate")
        if name == SPONTANEOUS and planted is not None and "trial" not in planted.dims:
            n_parts = 1 + min(SPONTANEOUS_PARTS, len(pieces) - k - 1)
            bounds = _parts(piece.sizes["time"], float(piece.attrs["dt_s"]), n_parts)
            entries.append((name, k, bounds[0]))
            pending = [(name, k, b) for b in bounds[1:]]
            continue
        entries.append((name, k, (0, piece.sizes.get("time", 0))))
        if pending:
            entries.append(pending.pop(0))
    return entries


def _parts(n_time: int, dt: float, n_parts: int) -> list[tuple[int, int]]:
    """Bin ranges of the parts: half the bins first, the rest in equal parts, cut on whole
    seconds where ``dt`` divides a second (so rebinning the counts to 0.5 s stays exact)."""
    per_second = round(1 / dt)
    unit = per_second if per_second > 0 and abs(per_second * dt - 1) < 1e-9 else 1
    whole = n_time // unit
    if n_parts == 1 or whole < 2 * n_parts:
        return [(0, n_time)]
    edges = [0, whole // 2] + [
        r[-1] + 1 for r in np.array_split(np.arange(whole // 2, whole), n_parts - 1)
    ]
    edges = [e * unit for e in edges]
    edges[-1] = n_time
    return list(zip(edges[:-1], edges[1:], strict=True))


def _gap_sweeps(spans: list[tuple[str, float, float]], duration: float) -> pd.DataFrame:
    """Spontaneous sweeps (background activity only) in the gaps between stimulus blocks and
    after the last one, as Allen sessions have them (each from the whole second after a block's
    end to the next block's start, so rebinning at 0.5 s stays aligned); none next to a
    ``spontaneous`` block (AllenSDK would join the two rows into one epoch)."""
    rows = []
    after = [*spans[1:], (None, duration, duration)]
    for (before, _, stop), (following, start, _) in zip(spans, after, strict=True):
        begin = float(math.ceil(stop))
        if SPONTANEOUS not in (before, following) and start - begin >= 0.5:
            rows.append((begin, start))
    frame = pd.DataFrame(rows, columns=["start_time", "stop_time"], dtype=float)
    return _table_ids(frame.assign(stimulus_name=SPONTANEOUS))


def _presentation_ids(presentations: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """AllenSDK's ``stimulus_presentation_id`` of each table row (file order): the row number of
    all tables stacked and sorted by start time (see :mod:`neurodag.io.allen_stimuli`)."""
    from neurodag.io.allen_stimuli import merge_presentations

    merged = merge_presentations(presentations)
    ids = {}
    for name, table in presentations.items():
        rows = np.flatnonzero(merged["stimulus_table"].to_numpy() == name)
        ids[name] = np.empty(len(table), dtype=np.int64)
        ids[name][merged["_row"].to_numpy()[rows]] = rows
    return ids


def _invalid_times(session_id: str, sweeps: pd.DataFrame, spans, probes) -> pd.DataFrame:
    """``invalid_times`` with AllenSDK's tags ``[scope, id, label]``: probe gain (``all_probes``)
    at 0.1-0.4 s; the last gap sweep, if any, as a ``stimulus`` interval (its presentation is then
    an invalid_presentation, and no planted trial is); 2 s of the first probe's data
    missing (its name) and 1 s of missing ``optotagging`` data, both inside the first block
    (which the labels leave valid)."""
    session = ["EcephysSession", session_id.removeprefix("simulated_")]
    rows = [(0.1, 0.4, [*session, "all_probes"])]
    if len(sweeps):
        start, stop = sweeps.iloc[-1][["start_time", "stop_time"]]
        rows.append((start + 0.2, min(start + 0.4, stop), [*session, "stimulus"]))
    if spans and len(probes):
        probe, probe_id = probes.index[0], int(probes["probe_id"].iloc[0])
        _, start, stop = spans[0]
        middle = (start + stop) / 2
        rows.append((middle, middle + 2.0, ["EcephysProbe", str(probe_id), str(probe)]))
        rows.append((middle - 1.0, middle, [*session, "optotagging"]))
    rows.sort(key=lambda row: row[0])
    return pd.DataFrame(rows, columns=["start_time", "stop_time", "tags"])


def _probe_layout(regions: list[str], rng) -> pd.DataFrame:
    """Electrodes: every channel of each probe that holds a region (``CHANNELS_PER_PROBE``, from
    the tip), as in the Allen files. The top ``OUT_OF_BRAIN_CHANNELS`` lie above the brain (empty
    ``location``); below them the probe's regions share the channels in runs, the deepest region
    at the tip; the reference sites have ``valid_data`` False. Neuropixels geometry (two columns
    of sites 20 um apart); CCF coordinates (um) along a straight track: ``x`` anterior-posterior,
    ``y`` dorsal-ventral, ``z`` left-right, as AllenSDK writes them."""
    others = iter(PROBES * (len(regions) + 1))
    probe_of = {}
    for region in regions:
        probe_of[region] = VISUAL_PROBES.get(region) or next(others)
    in_brain = CHANNELS_PER_PROBE - OUT_OF_BRAIN_CHANNELS
    local = np.arange(CHANNELS_PER_PROBE)
    frames = []
    for k, probe in enumerate(PROBES):
        on_probe = [r for r in regions if probe_of[r] == probe]
        if not on_probe:
            continue
        run = np.minimum(local * len(on_probe) // in_brain, len(on_probe) - 1)
        location = np.where(local < in_brain, np.array(on_probe, dtype=object)[run], "")
        surface_dv = 600.0 + rng.normal(0, 50)  # where the track enters the brain
        depth = (in_brain - local) * 10.0  # 20 um between rows of two sites
        frames.append(
            pd.DataFrame(
                {
                    "location": location,
                    "probe": probe,
                    "probe_id": PROBE_ID_BASE + k,
                    "local_index": local,
                    "probe_vertical_position": 20 * (local // 2) + 20,
                    "probe_horizontal_position": np.array([43, 11, 59, 27])[local % 4],
                    "valid_data": ~np.isin(local, REFERENCE_CHANNELS),
                    "x": 7800.0 + 350 * k + rng.normal(0, 30) + 0.05 * depth,
                    "y": surface_dv + depth,
                    "z": 8400.0 + 250 * (k % 3) + rng.normal(0, 30) - 0.1 * depth,
                }
            )
        )
    electrodes = pd.concat(frames, ignore_index=True)
    electrodes.index = pd.Index(CHANNEL_ID_BASE + np.arange(len(electrodes)), name="channel_id")
    return electrodes


def _quality_metrics(n: int, rng) -> pd.DataFrame:
    """Metrics of units that pass AllenSDK's default filter (the Allen units-table columns; the
    propagation velocities are missing, NaN, for about a fifth of the units, as in the files)."""
    velocity = rng.normal(0.0, 0.4, (2, n))
    velocity[rng.random((2, n)) < 0.2] = np.nan
    return pd.DataFrame(
        {
            "quality": ["good"] * n,
            "snr": rng.uniform(1.5, 4.0, n),
            "isi_violations": rng.uniform(0.0, 0.4, n),
            "presence_ratio": rng.uniform(0.96, 0.99, n),
            "amplitude_cutoff": rng.uniform(0.001, 0.09, n),
            "isolation_distance": rng.uniform(20.0, 120.0, n),
            "l_ratio": rng.uniform(0.0, 0.1, n),
            "d_prime": rng.uniform(2.0, 8.0, n),
            "nn_hit_rate": rng.uniform(0.7, 1.0, n),
            "nn_miss_rate": rng.uniform(0.0, 0.02, n),
            "max_drift": rng.uniform(5.0, 50.0, n),
            "cumulative_drift": rng.uniform(50.0, 400.0, n),
            "silhouette_score": rng.uniform(0.02, 0.3, n),
            "waveform_duration": rng.uniform(0.2, 0.9, n),
            "waveform_halfwidth": rng.uniform(0.1, 0.4, n),
            "PT_ratio": rng.uniform(0.3, 0.8, n),
            "repolarization_slope": rng.uniform(0.2, 1.0, n),
            "recovery_slope": rng.uniform(-0.2, 0.0, n),
            "amplitude": rng.uniform(50, 300, n),
            "spread": rng.uniform(20.0, 150.0, n),
            "velocity_above": velocity[0],
            "velocity_below": velocity[1],
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


def filler_table(name: str, options: dict, start: float, block: int) -> pd.DataFrame:
    """A filler stimulus table: ``rows`` presentations of ``duration_s``, one every
    ``interval_s`` (default: back to back) from ``start``, with a ``frame`` parameter counting
    the rows and starting again after ``frames`` rows (a movie clip shown rows / frames times, as
    a movie's frame column does; default: one count over all rows)."""
    rows, duration = int(options["rows"]), float(options["duration_s"])
    interval = float(options.get("interval_s") or duration)
    frames = int(options.get("frames") or rows)
    if rows < 1 or duration <= 0 or interval < duration or frames < 1:
        raise ConfigError(
            f"simulate.stimuli.{name}: needs rows >= 1, duration_s > 0, interval_s >= duration_s"
            ", frames >= 1"
        )
    onsets = start + np.arange(rows) * interval
    table = _presentation_table(name, onsets, onsets + duration, block)
    table["frame"] = (np.arange(rows) % frames).astype(float)
    return table


def compose_session(
    pieces: list[xr.Dataset],
    *,
    seed: int = 0,
    background_rate_hz: float = 0.5,
    gap_s: float = 1.0,
    n_filtered_units: int = 8,
    running_rate_hz: float = 60.0,
    n_filler_units: int = 0,
    filler_regions: tuple[str, ...] | list[str] = (),
    stimuli: dict[str, dict] | None = None,
) -> SimulatedSession:
    """Lay the pieces out as stimulus blocks of one session and draw its spikes.

    ``n_filler_units`` units that pass the unit filter and fire background spikes only (in
    ``filler_regions``, in turn) and the filler stimulus tables ``stimuli`` ({name: {rows,
    duration_s, interval_s}}, after the pieces' blocks) make a session as large as a real one
    (the ``real`` size preset, config/allen_real_size.yaml)."""
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
    if n_filler_units and not filler_regions:
        raise ConfigError("simulate.filler_regions: filler units need at least one region")
    unit_piece += [FILLER] * n_filler_units
    unit_source += [""] * n_filler_units
    unit_region += [filler_regions[k % len(filler_regions)] for k in range(n_filler_units)]
    regions = list(dict.fromkeys(unit_region))
    n_passing = len(unit_source)
    unit_piece += ["none"] * n_filtered_units
    unit_source += [""] * n_filtered_units
    unit_region += list(rng.choice(regions, n_filtered_units))
    n_units = len(unit_source)

    # Stimulus blocks in session order (a continuous spontaneous piece split between the later
    # pieces, see _schedule), each starting on a whole second.
    spikes_unit, spikes_time, presentations, templates, groups = [], [], {}, {}, {}
    first_unit = np.cumsum([0] + [piece.sizes["neuron"] for piece in pieces])
    own_blocks = [[] for _ in pieces]  # each piece's (start, stop) blocks
    planted_of, drawn, parts = {}, {}, {}
    start, block_number, spans = math.ceil(gap_s), 0, []
    for name, k, bins in _schedule(names, pieces):
        piece = pieces[k]
        dt = float(piece.attrs["dt_s"])
        units = np.arange(first_unit[k], first_unit[k + 1])
        if name not in planted_of:
            planted_of[name] = _planted_counts(piece, rng)
        planted = planted_of[name]
        group = piece.drop_vars([v for v in ("rate", "counts", "image") if v in piece])
        if "trial" in planted.dims:
            planted = planted.transpose("trial", "neuron", "time")
            n_trials, _, n_time = planted.shape
            duration = n_time * dt
            step = duration + float(piece.attrs.get("iti_s", 0.0))
            onsets = start + np.arange(n_trials) * step
            neuron, time = _spikes_from_counts(planted.values, onsets, dt, rng)
            table = _presentation_table(name, onsets, onsets + duration, block_number)
            for var, values in _trial_variables(piece).items():
                table[var] = _allen_values(values)
            table["units"] = "deg"  # a text parameter beside the numeric ones, as in Allen tables
            presentations[name] = table
            stop = onsets[-1] + duration
            group = group.assign(
                start_time=("trial", onsets),
                planted_counts=planted.assign_coords(trial=np.arange(n_trials)),
            ).assign_coords(trial=np.arange(n_trials))
            groups[name] = (group, units, {"block_start": float(start), "block_stop": stop})
        else:
            planted = planted.transpose("neuron", "time")
            if name not in drawn:  # one draw for the whole piece, then cut into its parts
                drawn[name] = _spikes_from_counts(planted.values, np.float64(0.0), dt, rng)
            lo, hi = bins
            neuron, relative = drawn[name]
            inside = (relative >= lo * dt) & (relative < hi * dt)
            neuron, time = neuron[inside], start + relative[inside] - lo * dt
            stop = start + (hi - lo) * dt
            parts.setdefault(name, (group, planted, units, block_number, []))[-1].append(
                (float(start), float(stop), start + (np.arange(hi - lo) + 0.5) * dt)
            )
        spans.append((name, float(start), float(stop)))
        block_number += name != SPONTANEOUS
        if "image" in piece:
            templates[name] = piece["image"].transpose("frame", "y", "x").values.astype(float)
        spikes_unit.append(units[neuron])
        spikes_time.append(time)
        own_blocks[k].append((start, stop))
        start = math.ceil(stop + gap_s)
    # Filler stimulus tables (a real session's other stimuli, at their real length), after the
    # pieces' blocks.
    for block, (name, options) in enumerate((stimuli or {}).items(), start=block_number):
        if name in presentations or name in parts:
            raise ConfigError(f"simulate.stimuli.{name}: a piece already makes this stimulus table")
        table = filler_table(name, options, start, block)
        presentations[name] = table
        spans.append((name, float(table["start_time"].iloc[0]), float(table["stop_time"].iloc[-1])))
        start = math.ceil(float(table["stop_time"].iloc[-1]) + gap_s)
    duration = float(start)
    for name, (group, planted, units, number, blocks) in parts.items():
        session_time = np.concatenate([times for _, _, times in blocks])
        table = _presentation_table(name, [b[0] for b in blocks], [b[1] for b in blocks], number)
        presentations[name] = table
        group = group.assign_coords(time=session_time).assign(
            planted_counts=planted.assign_coords(time=session_time)
        )
        block_attrs = {"block_start": blocks[0][0], "block_stop": blocks[-1][1]}
        if len(blocks) > 1:
            block_attrs.update(
                part_starts=[b[0] for b in blocks], part_stops=[b[1] for b in blocks]
            )
        groups[name] = (group, units, block_attrs)
    order_of_tables = [*names, *(stimuli or {})]  # config order, the filler tables last
    presentations = {name: presentations[name] for name in order_of_tables}
    groups = {name: groups[name] for name in names}
    sweeps = _gap_sweeps(spans, duration)
    if len(sweeps):
        spontaneous = presentations.get(SPONTANEOUS)
        presentations[SPONTANEOUS] = _table_ids(
            pd.concat([spontaneous, sweeps]) if spontaneous is not None else sweeps
        )
    presentation_id = _presentation_ids(presentations)

    # Each unit's own blocks: its background is drawn outside them (SpikeTrains).
    own_blocks_of_unit = [np.zeros((0, 2))] * n_units
    for k, blocks in enumerate(own_blocks):
        for unit in range(first_unit[k], first_unit[k + 1]):
            own_blocks_of_unit[unit] = np.array(blocks, dtype=float).reshape(-1, 2)
    unit = np.concatenate(spikes_unit)
    time = np.concatenate(spikes_time)

    # Peak channels: piece units on a valid channel of their region; the filtered units failing
    # valid_data on a reference site, those failing structure_acronym above the brain.
    electrodes = _probe_layout(regions, rng)
    failure = np.full(n_units, None, dtype=object)  # the criterion each filtered unit fails
    for k, failing in enumerate(range(n_passing, n_units)):
        failure[failing] = FILTER_FAILURES[k % len(FILTER_FAILURES)][0]
    channel_failures = np.isin(failure, ["valid_data", "structure_acronym"])
    location = electrodes["location"].to_numpy()
    valid = electrodes["valid_data"].to_numpy()
    unit_region = np.asarray(unit_region, dtype=object)
    peak = np.empty(n_units, dtype=np.int64)
    for region in regions:
        in_region = location == region
        on_probe = electrodes["probe"].to_numpy() == electrodes["probe"][in_region].iloc[0]
        invalid = in_region & ~valid
        pools = (
            (~channel_failures, in_region & valid),
            (failure == "valid_data", invalid if invalid.any() else on_probe & ~valid),
            (failure == "structure_acronym", on_probe & (location == "")),
        )
        for members, pool in pools:
            members = np.flatnonzero(members & (unit_region == region))
            peak[members] = rng.choice(electrodes.index[pool].to_numpy(), members.size)
    unit_region = electrodes.loc[peak, "location"].to_numpy()  # "" above the brain

    # Units sorted as in Allen tables (by probe, then depth), with ids in that order.
    local = electrodes.loc[peak, "local_index"].to_numpy()
    probe = electrodes.loc[peak, "probe"].to_numpy()
    order = np.lexsort((np.arange(n_units), local, probe))
    rank = np.empty(n_units, dtype=np.int64)
    rank[order] = np.arange(n_units)
    metrics = _quality_metrics(n_units, rng)
    for k, failing in enumerate(range(n_passing, n_units)):
        column, value = FILTER_FAILURES[k % len(FILTER_FAILURES)]
        if column in metrics:
            metrics.loc[failing, column] = value
    first_of_probe = pd.Series(np.arange(n_units)).groupby(probe[order]).transform("min")
    within_probe = np.empty(n_units, dtype=np.int64)  # the unit's index on its probe
    within_probe[order] = np.arange(n_units) - first_of_probe.to_numpy()
    units = metrics.assign(
        peak_channel_id=peak,
        local_index=within_probe,
        cluster_id=rng.permutation(n_units),
        region=unit_region,
        probe=probe,
        piece=unit_piece,
        piece_neuron=unit_source,
    )
    units.index = pd.Index(UNIT_ID_BASE + rank, name="unit_id")
    units = units.iloc[order]
    # Planted spikes in memory, sorted by unit (table order) then time; the Poisson background of
    # every unit outside its own block is drawn unit by unit when written (SpikeTrains).
    unit_sorted = rank[unit]
    spike_order = np.lexsort((time, unit_sorted))
    own_time = np.array([np.sum(b[:, 1] - b[:, 0]) for b in own_blocks_of_unit])
    trains = SpikeTrains(
        planted_times=time[spike_order],
        planted_index=np.cumsum(np.bincount(unit_sorted, minlength=n_units)),
        n_background=rng.poisson(background_rate_hz * (duration - own_time))[order],
        exclude=[own_blocks_of_unit[u] for u in order],
        duration=duration,
        seed=seed,
    )
    n_spikes = np.diff(trains.index, prepend=0)
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
    speed = np.maximum(0.0, 40 * np.cumsum(walk) / np.sqrt(n_samples))
    # sampled on the stimulus frames, whose times jitter (the Allen files store the timestamps)
    jitter = rng.uniform(0, 0.1 / running_rate_hz, n_samples)
    running = pd.DataFrame(
        {"time": np.arange(n_samples) / running_rate_hz + jitter, "speed": speed}
    )
    invalid = _invalid_times(f"simulated_{seed}", sweeps, spans, probes)

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
        if "trial" in group.dims:  # the presentation ids AllenSDK gives the trials
            group = group.assign_coords(trial=presentation_id[name][group["trial"].values])
        original = group["neuron"].values.astype(str)
        group = group.assign_coords(neuron=id_of[members].astype(str)).assign(
            piece_neuron=("neuron", original)
        )
        group.attrs = _clean_attrs({**group.attrs, **block_attrs})
        truth_groups[name] = group

    return SimulatedSession(
        session_id=f"simulated_{seed}",
        units=units,
        trains=trains,
        electrodes=electrodes,
        probes=probes,
        presentations=presentations,
        templates=templates,
        running_speed=running,
        invalid_times=invalid,
        truth=truth,
        truth_groups=truth_groups,
    )


def simulated_nwbfile(
    session: SimulatedSession, description: str, keywords: list[str], subject=None, **extra
):
    """The ``NWBFile`` of a simulated session, before its contents (both layouts share it);
    ``subject`` replaces the plain NWB ``Subject``."""
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
        subject=subject
        or Subject(
            subject_id="simulated",
            species="Mus musculus",
            sex="U",
            age="P100D",
            description="simulated mouse",
        ),
        **extra,
    )


@functools.cache
def ecephys_types() -> dict:
    """The ``ndx-aibs-ecephys`` extension types (``EcephysProbe``, ``EcephysElectrodeGroup``,
    ``EcephysSpecimen``), from AllenSDK's namespace and extension yaml kept in
    ``neurodag/data/ndx-aibs-ecephys`` and loaded with pynwb's ``load_namespaces``, as AllenSDK's
    ``brain_observatory/ecephys/nwb/__init__.py`` does. Files written with them cache the
    namespace, so readers need neither AllenSDK nor this package."""
    from importlib.resources import files

    import pynwb

    folder = files("neurodag") / "data" / ECEPHYS_NAMESPACE
    namespace = folder / f"{ECEPHYS_NAMESPACE}.namespace.yaml"
    if ECEPHYS_NAMESPACE not in pynwb.available_namespaces():
        pynwb.load_namespaces(str(namespace))
    return {
        name: pynwb.get_class(name, ECEPHYS_NAMESPACE)
        for name in ("EcephysProbe", "EcephysElectrodeGroup", "EcephysSpecimen")
    }


def _mean_waveforms(amplitude: np.ndarray, peak_local: np.ndarray, block_units: int = 16):
    """The ragged ``waveform_mean`` data, written in blocks of units (an hdmf
    ``GenericDataChunkIterator``): each unit's mean waveform on every channel of its probe
    (``CHANNELS_PER_PROBE`` rows of ``WAVEFORM_SAMPLES``), largest on its peak channel and fading
    over about ten channels, zero further away (so it compresses)."""
    from hdmf.data_utils import GenericDataChunkIterator

    amplitude = np.asarray(amplitude, dtype=np.float64)
    peak_local = np.asarray(peak_local, dtype=np.float64)
    t = np.arange(WAVEFORM_SAMPLES) / SAMPLE_RATE_HZ
    shape = -np.exp(-(((t - 6e-4) / 2e-4) ** 2)) + 0.4 * np.exp(-(t - 1e-3) / 5e-4) * (t > 1e-3)
    n_rows = len(amplitude) * CHANNELS_PER_PROBE

    class MeanWaveforms(GenericDataChunkIterator):
        def _get_data(self, selection: tuple) -> np.ndarray:
            rows = np.arange(n_rows)[selection[0]]
            unit, channel = np.divmod(rows, CHANNELS_PER_PROBE)
            distance = np.abs(channel - peak_local[unit])
            scale = amplitude[unit] * np.exp(-((distance / 6.0) ** 2)) * (distance <= 12)
            return (scale[:, None] * shape[selection[1]]).astype(np.float32)

        def _get_maxshape(self) -> tuple:
            return (n_rows, WAVEFORM_SAMPLES)

        def _get_dtype(self) -> np.dtype:
            return np.dtype(np.float32)

    chunk = min(max(n_rows, 1), CHANNELS_PER_PROBE * block_units)
    buffer = chunk * max(1, min(8, n_rows // chunk))
    return MeanWaveforms(
        chunk_shape=(chunk, WAVEFORM_SAMPLES), buffer_shape=(buffer, WAVEFORM_SAMPLES)
    )


def _specimen_strain(path: Path, strain: str) -> None:
    """``EcephysSpecimen.strain`` as the attribute the extension declares. pynwb 4 maps a
    Subject's ``strain`` to the core dataset (NWB >= 2.4) and leaves the extension's required
    attribute unwritten, which NWB validation reports; the Allen files (NWB 2.2.2) carry the
    attribute, so it is added to the written file directly."""
    import h5py

    with h5py.File(path, "a") as f:
        f["general/subject"].attrs["strain"] = strain


def _allen_probes(nwb, session: SimulatedSession) -> dict:
    """One ``EcephysProbe`` device and one ``EcephysElectrodeGroup`` per probe (AllenSDK
    write_nwb ``add_probe_to_nwbfile``); the groups by probe name."""
    types = ecephys_types()
    groups = {}
    for probe, row in session.probes.iterrows():
        with warnings.catch_warnings():  # pynwb 4 prefers a DeviceModel; the Allen files have this
            warnings.filterwarnings("ignore", "The 'manufacturer' field is deprecated")
            device = types["EcephysProbe"](
                name=probe,
                description="Neuropixels 1.0 Probe",
                manufacturer="imec",
                probe_id=int(row["probe_id"]),
                sampling_rate=SAMPLE_RATE_HZ,
            )
        groups[probe] = types["EcephysElectrodeGroup"](
            name=probe,
            description="Ecephys Electrode Group",
            probe_id=int(row["probe_id"]),
            location="See electrode locations",
            device=device,
            lfp_sampling_rate=LFP_SAMPLE_RATE_HZ,
            has_lfp_data=False,  # no probe-wise LFP files are simulated
        )
        nwb.add_device(device)
        nwb.add_electrode_group(groups[probe])
    return groups


def _allen_electrodes(nwb, session: SimulatedSession, groups: dict) -> None:
    """Every channel, with the columns and dtypes of AllenSDK write_nwb
    ``add_ecephys_electrodes``: ``x, y, z`` (CCF um, float64), ``imp`` (NaN), ``location``
    (structure acronym, "" above the brain), ``filtering``, ``group``, ``group_name``, then the
    Allen columns (int64 positions and ids, bool ``valid_data``). Written column-wise."""
    from hdmf.common import ElementIdentifiers, VectorData
    from pynwb.file import ElectrodesTable

    table = session.electrodes
    descriptions = {c["name"]: c["description"] for c in ElectrodesTable.__columns__}
    columns = {
        "x": table["x"].to_numpy(dtype=np.float64),
        "y": table["y"].to_numpy(dtype=np.float64),
        "z": table["z"].to_numpy(dtype=np.float64),
        "imp": np.full(len(table), np.nan),
        "location": table["location"].astype(str).tolist(),
        "filtering": ["AP band: 500 Hz high-pass; LFP band: 1000 Hz low-pass"] * len(table),
        "group": [groups[p] for p in table["probe"]],
        "group_name": table["probe"].astype(str).tolist(),
    }
    for name in ELECTRODE_COLUMNS:
        dtype = bool if name == "valid_data" else np.int64
        columns[name] = table[name].to_numpy(dtype=dtype)
    descriptions.update(ELECTRODE_COLUMNS)
    nwb.electrodes = ElectrodesTable(
        id=ElementIdentifiers(name="id", data=table.index.to_numpy(dtype=np.int64)),
        columns=[
            VectorData(name=name, description=descriptions[name], data=data)
            for name, data in columns.items()
        ],
    )


def _allen_units(session: SimulatedSession):
    """The units table as AllenSDK write_nwb builds it (``Units.from_dataframe`` of the unit
    metadata, then the ragged ``spike_times``, ``spike_amplitudes`` and ``waveform_mean``)."""
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from hdmf.common import ElementIdentifiers, VectorData, VectorIndex
    from pynwb.misc import Units

    table = session.units
    columns = []
    for name, description in UNIT_COLUMNS.items():
        values = table[name].to_numpy()
        if values.dtype == object:
            data = values.astype(str).tolist()
        elif values.dtype.kind in "iu":
            data = values.astype(np.int64)
        else:
            data = values.astype(np.float64)
        columns.append(VectorData(name=name, description=description, data=data))
    ends = session.spike_index.astype(np.int64)
    # streamed unit block by unit block (a real-size session has 1e8 spikes)
    spike_times = VectorData(
        name="spike_times",
        description="times (s) of detected spiking events",
        data=H5DataIO(_streamed(session.trains, amplitudes=False), compression="gzip"),
    )
    amplitudes = VectorData(
        name="spike_amplitudes",
        description="amplitude (s) of detected spiking events",
        data=H5DataIO(_streamed(session.trains, amplitudes=True), compression="gzip"),
    )
    peak_local = session.electrodes.loc[table["peak_channel_id"], "local_index"].to_numpy()
    waveforms = VectorData(
        name="waveform_mean",
        description="mean waveforms on peak channels (and over samples)",
        data=H5DataIO(
            _mean_waveforms(table["amplitude"].to_numpy(), peak_local), compression="gzip"
        ),
    )
    return Units(
        name="units",
        description="sorted units",
        id=ElementIdentifiers(name="id", data=table.index.to_numpy(dtype=np.int64)),
        columns=[
            *columns,
            # each index before its streamed target (hdmf drops an iterator column first)
            VectorIndex(name="spike_times_index", data=ends, target=spike_times),
            spike_times,
            VectorIndex(name="spike_amplitudes_index", data=ends, target=amplitudes),
            amplitudes,
            # the index first: hdmf's DynamicTable drops an iterator column before it would
            # find it as the index's target
            VectorIndex(
                name="waveform_mean_index",
                data=CHANNELS_PER_PROBE * np.arange(1, len(table) + 1, dtype=np.int64),
                target=waveforms,
            ),
            waveforms,
        ],
        resolution=1 / SAMPLE_RATE_HZ,
    )


def write_nwb(session: SimulatedSession, path: str | Path) -> Path:
    """Write the session in the Allen ecephys layout (AllenSDK write_nwb: core NWB and the
    ``ndx-aibs-ecephys`` types, their namespace cached in the file), atomically."""
    import os

    from pynwb import NWBHDF5IO, TimeSeries

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nwb = simulated_nwbfile(
        session,
        "Simulated Allen Visual Coding Neuropixels session (neurodag)",
        ["simulation", "Neuropixels", "visual coding", "ground truth"],
        subject=ecephys_types()["EcephysSpecimen"](
            subject_id="simulated",
            species="Mus musculus",
            sex="U",
            age="P100D",
            description="simulated mouse",
            specimen_name="simulated mouse",
            age_in_days=100.0,
            genotype="wt/wt",
        ),
        stimulus_notes="Visual Coding Neuropixels layout; see neurodag docs/data-model.md",
    )
    groups = _allen_probes(nwb, session)
    _allen_electrodes(nwb, session, groups)
    nwb.units = _allen_units(session)

    _add_presentations(nwb, session.presentations)

    running = nwb.create_processing_module(name="running", description="running speed")
    running.add(  # with timestamps, as AllenSDK writes it (add_running_speed_to_nwbfile)
        TimeSeries(
            name="running_speed",
            data=session.running_speed["speed"].to_numpy(),
            timestamps=session.running_speed["time"].to_numpy(),
            unit="cm/s",
            description="running speed of the mouse on the wheel",
        )
    )
    for _, row in session.invalid_times.iterrows():
        nwb.add_invalid_time_interval(
            start_time=float(row["start_time"]),
            stop_time=float(row["stop_time"]),
            tags=[str(t) for t in row["tags"]],
        )

    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.nwb")
    try:
        with NWBHDF5IO(str(tmp), "w") as io, warnings.catch_warnings():
            # the specimen's strain attribute, added next (see _specimen_strain)
            warnings.filterwarnings("ignore", "EcephysSpecimen .*missing required value")
            io.write(nwb)
        _specimen_strain(tmp, SPECIMEN_STRAIN)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _add_presentations(nwb, presentations: dict[str, pd.DataFrame]) -> None:
    """One ``<stimulus>_presentations`` TimeIntervals per table, as AllenSDK's
    ``add_stimulus_presentations`` writes them: ids 0, 1, ... per table, numeric columns as float
    (NaN missing), text as text ("N/A" missing), the ragged ``tags`` ("stimulus_time_interval")
    and the compound ``timeseries`` column pointing into ``processing/stimulus/timestamps`` (the
    start times of every presentation, AllenSDK's ``add_stimulus_timestamps``). Whole columns at
    once: add_row per presentation costs milliseconds each in hdmf."""
    from hdmf.common import ElementIdentifiers, VectorData, VectorIndex
    from pynwb import TimeSeries
    from pynwb.base import TimeSeriesReference, TimeSeriesReferenceVectorData
    from pynwb.epoch import TimeIntervals

    starts = np.sort(
        np.concatenate([t["start_time"].to_numpy(float) for t in presentations.values()])
    )
    stimulus = nwb.create_processing_module(
        name="stimulus", description="Stimulus Times processing"
    )
    timestamps = TimeSeries(
        name="timestamps",
        data=starts,
        timestamps=starts,
        unit="s",
        description="start time of every stimulus presentation",
    )
    stimulus.add(timestamps)
    descriptions = {
        "start_time": "Start time of the presentation (s)",
        "stop_time": "Stop time of the presentation (s)",
        "stimulus_name": "Name of stimulus",
        "stimulus_block": "Index of contiguous presentations of one stimulus type",
        "stimulus_index": "Index of stimulus type",
    }
    for name, frame in presentations.items():
        columns = []
        for column in frame.columns:
            values = frame[column].to_numpy()
            data = values.astype(float) if values.dtype.kind in "biuf" else values.astype(str)
            description = descriptions.get(column, f"stimulus parameter {column}")
            columns.append(VectorData(name=column, description=description, data=data.tolist()))
        n = len(frame)
        tags = VectorData(
            name="tags", description="user-defined tags", data=["stimulus_time_interval"] * n
        )
        first = np.searchsorted(starts, frame["start_time"].to_numpy(float))
        references = TimeSeriesReferenceVectorData(
            name="timeseries",
            description="the stimulus timestamps of the presentation",
            data=[TimeSeriesReference(int(k), 1, timestamps) for k in first],
        )
        intervals = TimeIntervals(
            name=f"{name}_presentations",
            description=f"Presentation times and stimuli details for '{name}' stimuli.",
            id=ElementIdentifiers(name="id", data=frame.index.to_numpy().tolist()),
            columns=[
                *columns,
                tags,
                VectorIndex(name="tags_index", data=list(range(1, n + 1)), target=tags),
                references,
                VectorIndex(name="timeseries_index", data=list(range(1, n + 1)), target=references),
            ],
        )
        nwb.add_time_intervals(intervals)


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
        n_filler_units=int(options.get("filler_units", 0)),
        filler_regions=list(options.get("filler_regions") or []),
        stimuli=options.get("stimuli") or {},
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
