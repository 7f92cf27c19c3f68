"""Generic NWB spiking sessions (kind ``spikes``, format ``nwb``), and the units/binning code the
Allen reader shares.

Any lab's NWB file with a ``Units`` table enters the spiking contract here (DANDI sets written by
NeuroConv or pynwb: IBL, Steinmetz et al., Churchland et al., the Neural Latents Benchmark). The
layout is the NWB core schema (nwb-schema ``core/nwb.misc.yaml`` ``Units``, ``core/nwb.epoch.yaml``
``TimeIntervals``; pynwb ``pynwb.misc.Units``, ``pynwb.epoch.TimeIntervals``), read with pynwb
the way pynapple's NWB loader (``pynapple/io/interface_nwb.py``) does, so a user moving from it
finds the same things:

- units: the ragged ``spike_times`` (flat data + ``spike_times_index``), every scalar column as a
  unit variable; a unit's region is, in order, the unit column ``region_column`` named in config,
  the ``location`` of its first row of the ``electrodes`` table (the units' ``electrodes``
  DynamicTableRegion), the ``location`` of its ``electrode_group`` (pynapple's fallback), or
  "unknown" (logged); its probe is that electrode's group name;
- interval tables (``trials``, ``epochs``, any ``TimeIntervals`` under ``intervals``): every
  scalar column; an alignment column with NaN (an event that did not happen) drops the trial;
- behaviour: every ``TimeSeries`` / ``SpatialSeries`` in ``processing/behavior`` (directly or
  inside ``Position``/``CompassDirection``/``BehavioralTimeSeries``), times from ``timestamps``
  or ``starting_time + k / rate`` (as pynapple's ``_make_tsd``), 2-D series split into columns
  ``x, y, z`` (SpatialSeries, as pynapple) or ``0, 1, ...``.

The rules taken, with their sources, are listed in ``docs/data-model.md`` ("Generic NWB spiking
sessions"). Binning and trial alignment are :mod:`neurodag.spikes`, shared with the Allen ingest
(:mod:`neurodag.ingest_allen`), which builds its outputs with :func:`counts_dataset`,
:func:`aligned_responses` and :func:`select_regions` from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from neurodag.errors import ConfigError, InputError
from neurodag.spikes import (
    align_spikes,
    bin_centres,
    bin_spikes,
    check_bin_size,
    check_index,
)

log = logging.getLogger(__name__)

#: Text values that tables use for "no value" (Allen stimulus tables, NeuroConv text columns).
MISSING_TEXT = frozenset({"N/A", "n/a", "NA", "null", "None", "none", "nan", "NaN", ""})
NO_EPOCH = "none"  # epoch(time) of a bin outside every epoch
UNKNOWN_REGION = "unknown"
COUNTS = "counts"  # the name of the session-long counts output (counts.nc)
KEY = "stages.ingest.spikes"
#: Names a trial-table column cannot keep in responses(trial, neuron, time): they are renamed
#: ``trial_<name>``.
RESERVED = ("trial", "neuron", "time", "region", "probe", "responses")


def _text(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def parse_column(values: Any) -> np.ndarray:
    """A stimulus/unit column as numbers when every present value is a number, else as text.

    Text marking a missing value (``MISSING_TEXT``) becomes NaN in a numeric column and "" in a
    text column. Integer-valued columns without missing values stay integer.
    """
    array = np.asarray(values)
    if array.dtype.kind in "biu":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        return array.astype(np.float64)
    if array.dtype.kind == "b":
        return array
    text = _text(array.ravel())
    missing = np.array([t.strip() in MISSING_TEXT for t in text], dtype=bool)
    try:
        numbers = np.array([np.nan if m else float(t) for t, m in zip(text, missing, strict=True)])
    except ValueError:
        text[missing] = ""
        return text.astype(str)
    whole = np.all(numbers == np.round(numbers)) and np.all(np.abs(numbers) < 2**53)
    if numbers.size and not missing.any() and whole:
        return numbers.astype(np.int64)
    return numbers


def _scalar_columns(table, path: Path, where: str) -> dict[str, np.ndarray]:
    """Every scalar (not ragged, one value per row) column of a DynamicTable, parsed."""
    from hdmf.common import VectorIndex

    columns = {}
    for name in table.colnames:
        column = table[name]
        if isinstance(column, VectorIndex):
            continue  # ragged (spike_times, tags, waveforms): read separately where needed
        if len(getattr(column.data, "shape", (0,))) != 1:
            continue  # multi-dimensional (waveform_mean): not loaded at all
        if getattr(getattr(column.data, "dtype", None), "kind", "") == "V":
            continue  # compound (a TimeSeries reference: start, count, series)
        data = column.data[:]
        if len(data) and _is_reference(data[0]):
            continue  # object references (electrode group, timeseries)
        try:
            columns[name] = parse_column(data)
        except (TypeError, ValueError) as exc:
            raise InputError(path, f"{where}/{name}", f"unreadable column ({exc})") from exc
    return columns


def _is_reference(value: Any) -> bool:
    return not isinstance(value, str | bytes | int | float | bool | np.generic)


def open_nwb(path: str | Path):
    """An open ``NWBHDF5IO`` (extension namespaces from the file) and its NWBFile."""
    from pynwb import NWBHDF5IO

    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "file not found")
    try:
        io = NWBHDF5IO(str(path), mode="r", load_namespaces=True)
    except Exception as exc:
        raise InputError(path, None, f"not a readable NWB file ({exc})") from exc
    try:
        nwb = io.read()
    except Exception as exc:
        io.close()
        field, reason = _construct_error(exc)
        raise InputError(path, field, reason) from exc
    return io, nwb


def _construct_error(exc: BaseException) -> tuple[str | None, str]:
    """The innermost NWB object that failed to build (its path in the file) and why. A stimulus
    table missing start_time or stop_time is named down to the column."""
    from hdmf.build.errors import ConstructError

    innermost = None
    while exc is not None:
        if isinstance(exc, ConstructError) and len(exc.args) == 2:
            innermost = exc
        exc = exc.__cause__ or exc.__context__
    if innermost is None:
        return None, "NWB file does not read"
    builder, reason = innermost.args
    where = str(getattr(builder, "path", "")).removeprefix("root/") or None
    if getattr(builder, "attributes", {}).get("neurodata_type") == "TimeIntervals":
        for column in ("start_time", "stop_time"):
            if column not in builder.datasets:
                return f"{where}/{column}", "the interval table has no such column"
    return where, f"NWB object does not read ({reason})"


@dataclass
class SpikeColumn:
    """The flat ``spike_times`` data of a units table, not yet read (an ``h5py.Dataset`` when the
    file is open; any sliceable array otherwise). :meth:`read` reads the spikes of the units a
    filter keeps, block by block: a session's 1e8 spike times are never all in memory."""

    data: Any
    path: Path
    #: Spans of kept units closer than GAP values are read in one slice (so a gzip chunk is
    #: decompressed once, not once per unit), up to BLOCK values per slice (64 MiB of float64).
    GAP: ClassVar[int] = 1 << 20
    BLOCK: ClassVar[int] = 1 << 23

    def read(
        self, index: np.ndarray, keep: np.ndarray, order: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flat spike times and end offsets of the kept units (``index``: every unit's end
        offsets; ``keep``: a boolean per unit), in file order or in ``order`` (positions among
        the kept units): each unit's spikes are written straight to their place in the output."""
        index = np.asarray(index, dtype=np.int64)
        keep = np.asarray(keep, dtype=bool)
        lengths = np.diff(index, prepend=0)
        starts, stops = index - lengths, index
        kept = np.flatnonzero(keep)
        order = np.arange(len(kept)) if order is None else np.asarray(order, dtype=np.int64)
        out_lengths = lengths[kept][order]
        out_index = np.cumsum(out_lengths)
        destination = np.zeros(len(index), dtype=np.int64)  # output offset of each kept unit
        destination[kept[order]] = out_index - out_lengths
        out = np.empty(int(out_lengths.sum()), dtype=np.float64)
        units = kept[lengths[kept] > 0]
        k = 0
        while k < len(units):
            # kept units closer than GAP, up to BLOCK values, are read in one slice
            a, j = int(starts[units[k]]), k
            while (
                j + 1 < len(units)
                and starts[units[j + 1]] - stops[units[j]] <= self.GAP
                and stops[units[j + 1]] - a <= self.BLOCK
            ):
                j += 1
            if j == k:  # one unit (maybe long): straight into the output, a block at a time
                unit = units[k]
                shift = int(destination[unit] - starts[unit])
                for lo in range(a, int(stops[unit]), self.BLOCK):
                    hi = min(lo + self.BLOCK, int(stops[unit]))
                    out[lo + shift : hi + shift] = self.data[lo:hi]
            else:
                block = np.asarray(self.data[a : int(stops[units[j]])], dtype=np.float64)
                for unit in units[k : j + 1]:
                    at = int(destination[unit])
                    out[at : at + lengths[unit]] = block[starts[unit] - a : stops[unit] - a]
            k = j + 1
        if not np.isfinite(out).all():
            raise InputError(self.path, "units/spike_times", "spike times must be finite numbers")
        return out, out_index


def read_units(nwb, path: Path) -> tuple[pd.DataFrame, SpikeColumn, np.ndarray]:
    """All units: scalar columns (index unit id), the spike times not yet read (read the kept
    units' with :func:`keep_units`), and the ragged index."""
    units = nwb.units
    if units is None:
        raise InputError(path, "units", "the file has no units table (no sorted spikes)")
    if len(units.id) == 0:
        raise InputError(path, "units", "the units table is empty")
    if "spike_times" not in units.colnames:
        raise InputError(path, "units/spike_times", "the units table has no spike_times column")
    ragged = units["spike_times"]
    index = np.asarray(ragged.data[:], dtype=np.int64)
    times_data = ragged.target.data
    problem = check_index(index, len(times_data))
    if problem is None and len(index) != len(units.id):
        problem = f"has {len(index)} offsets for {len(units.id)} units"
    if problem:
        raise InputError(path, "units/spike_times_index", problem)
    table = pd.DataFrame(_scalar_columns(units, path, "units"))
    table.index = pd.Index(np.asarray(units.id.data[:], dtype=np.int64), name="unit_id")
    return table, SpikeColumn(times_data, path), index


def read_electrodes(nwb, path: Path) -> pd.DataFrame:
    """Channels (index channel id) with ``location`` and ``probe`` (the electrode group's name)."""
    electrodes = nwb.electrodes
    if electrodes is None or len(electrodes.id) == 0:
        raise InputError(path, "electrodes", "the file has no electrodes table")
    if "location" not in electrodes.colnames:
        raise InputError(path, "electrodes/location", "the electrodes table has no location")
    table = pd.DataFrame(_scalar_columns(electrodes, path, "electrodes"))
    table.index = pd.Index(np.asarray(electrodes.id.data[:], dtype=np.int64), name="channel_id")
    if "group_name" in table:
        table["probe"] = table["group_name"].astype(str)
    elif "group" in electrodes.colnames:
        table["probe"] = [group.name for group in electrodes["group"].data[:]]
    else:
        table["probe"] = ""
    table["location"] = table["location"].astype(str)
    return table


def select_units(times: np.ndarray, index: np.ndarray, keep: np.ndarray):
    """Flat spike times and index of the kept units only (vectorised: one boolean mask)."""
    lengths = np.diff(index, prepend=0)
    spike_keep = np.repeat(keep, lengths)
    return times[spike_keep[: len(times)]], np.cumsum(lengths[keep])


# --- Building the spiking contract (shared with the Allen ingest) ---------------------------------


def session_span(spike_times: np.ndarray, tables, path) -> tuple[float, float]:
    """First and last time of a session: its spikes and its interval tables' start/stop times."""
    first = [spike_times.min()] if spike_times.size else []
    last = [spike_times.max()] if spike_times.size else []
    for table in tables:
        if len(table):
            first.append(np.nanmin(table["start_time"].to_numpy(dtype=float)))
            last.append(np.nanmax(table["stop_time"].to_numpy(dtype=float)))
    if not first:
        raise InputError(path, "units/spike_times", "no spikes and no intervals to bin")
    return float(min(first)), float(max(last))


def session_grid(first: float, last: float, bin_size_s: float) -> tuple[float, int]:
    """Start and number of the bins of width ``bin_size_s`` that cover ``[first, last]``, the
    start on a multiple of the bin size."""
    start = np.floor(first / bin_size_s) * bin_size_s
    return start, int(np.floor((last - start) / bin_size_s)) + 1


def epochs_of(time: np.ndarray, blocks: pd.DataFrame) -> np.ndarray:
    """The block name (``blocks``: stimulus, start, stop; sorted by start) of each time
    (NO_EPOCH outside every block)."""
    epoch = np.full(len(time), NO_EPOCH, dtype=object)
    if len(blocks) == 0:
        return epoch.astype(str)
    k = np.searchsorted(blocks["start"].to_numpy(), time, side="right") - 1
    inside = (k >= 0) & (time < blocks["stop"].to_numpy()[np.maximum(k, 0)])
    epoch[inside] = blocks["stimulus"].to_numpy()[k[inside]]
    return epoch.astype(str)


def unit_coords(units: pd.DataFrame) -> dict:
    """``neuron`` (unit id as text), ``region(neuron)`` and, where known, ``probe(neuron)``."""
    coords = {
        "neuron": ("neuron", units.index.astype(str).to_numpy()),
        "region": ("neuron", units["region"].astype(str).to_numpy()),
    }
    if "probe" in units:
        coords["probe"] = ("neuron", units["probe"].astype(str).to_numpy())
    return coords


def unit_variables(units: pd.DataFrame) -> dict:
    """The units table's scalar columns (quality metrics, ...) as variables on ``neuron``."""
    skip = {"region", "probe"}
    return {
        f"unit_{name}" if name in ("counts", "responses") else name: ("neuron", values.to_numpy())
        for name, values in units.items()
        if name not in skip
    }


def keep_units(
    times: SpikeColumn,
    index: np.ndarray,
    keep: np.ndarray,
    path: Path,
    order: np.ndarray | None = None,
):
    """The spike trains of the units a filter keeps (only theirs are read from the file), in
    file order or in ``order`` (positions among the kept units), with the counts in the log."""
    log.info(
        "%s: %d units, %d kept by the unit filter, %d dropped",
        path.name,
        len(keep),
        int(keep.sum()),
        int((~keep).sum()),
    )
    return times.read(index, keep, order)


def session_counts_dataset(session, tables, bin_size_s: float, blocks: pd.DataFrame) -> xr.Dataset:
    """:func:`counts_dataset` of a session (``spike_times``, ``spike_index``, ``units``,
    ``path``) on bins spanning its spikes and the start/stop times of ``tables``."""
    start, n_bins = session_grid(
        *session_span(session.spike_times, tables, session.path), bin_size_s
    )
    return counts_dataset(
        session.spike_times, session.spike_index, session.units, start, bin_size_s, n_bins, blocks
    )


def counts_dataset(
    times: np.ndarray,
    index: np.ndarray,
    units: pd.DataFrame,
    start: float,
    bin_size_s: float,
    n_bins: int,
    blocks: pd.DataFrame,
) -> xr.Dataset:
    """Session-long ``counts(neuron, time)`` (bin centres, smallest integer type), the unit
    coordinates and variables, ``epoch(time)`` and the blocks (``block_stimulus/start/stop``)."""
    # int16 from the start (a wider type only where a bin overflows it): no int32 copy of a
    # session's counts
    counts = bin_spikes(times, index, start, bin_size_s, n_bins, dtype=np.int16)
    time = bin_centres(start, bin_size_s, n_bins)
    data = {
        "counts": (("neuron", "time"), counts),
        "block_stimulus": ("block", blocks["stimulus"].astype(str).to_numpy()),
        "block_start": ("block", blocks["start"].to_numpy(dtype=float)),
        "block_stop": ("block", blocks["stop"].to_numpy(dtype=float)),
        **unit_variables(units),
    }
    coords = {**unit_coords(units), "time": time, "epoch": ("time", epochs_of(time, blocks))}
    ds = xr.Dataset(data, coords=coords)
    ds["counts"].attrs.update(units="spikes per bin", long_name="spike counts")
    ds["time"].attrs.update(units="s", long_name="bin centre")
    ds.attrs["bin_size_s"] = bin_size_s
    return ds


def trial_variables(table: pd.DataFrame) -> dict:
    """Every interval-table column as a variable on ``trial``."""
    out = {}
    for name, values in table.items():
        array = values.to_numpy()
        if array.dtype == object:
            array = array.astype(str)
        out[name] = ("trial", array)
    return out


def aligned_responses(
    times: np.ndarray,
    index: np.ndarray,
    units: pd.DataFrame,
    table: pd.DataFrame,
    onsets: np.ndarray,
    window_s: list[float],
    bin_size_s: float,
    *,
    relative_to: str,
    extra: dict | None = None,
) -> xr.Dataset:
    """Trial-aligned ``responses(trial, neuron, time)`` (``time`` = bin centre relative to each
    onset) with every column of ``table`` (one row per onset) as a variable on ``trial``;
    ``extra`` variables (an image stack) are added first, and a column named like one of their
    dimensions becomes a coordinate."""
    counts = align_spikes(times, index, onsets, tuple(window_s), bin_size_s, dtype=np.int16)
    time = bin_centres(window_s[0], bin_size_s, counts.shape[2])
    ds = xr.Dataset(
        {"responses": (("trial", "neuron", "time"), counts)},
        coords={**unit_coords(units), "trial": table.index.to_numpy(), "time": time},
    )
    for name, value in (extra or {}).items():
        ds[name] = value
    variables = trial_variables(table)
    ds = ds.assign_coords({k: v for k, v in variables.items() if k in ds.dims})
    ds = ds.assign({k: v for k, v in variables.items() if k not in ds.dims})
    ds["responses"].attrs.update(units="spikes per bin")
    ds["time"].attrs.update(units="s", long_name=f"bin centre relative to {relative_to}")
    ds.attrs.update(bin_size_s=bin_size_s, window_s=list(map(float, window_s)))
    return ds


def select_regions(session, regions: list[str] | None, field: str):
    """Keep the units of ``regions`` (None: all) in a session (``units`` with ``region``, flat
    ``spike_times``/``spike_index``, ``all_regions`` before filtering). A region no unit of the
    file has is an error naming ``field``, where the regions come from."""
    if not regions:
        return session
    absent = [r for r in regions if r not in session.all_regions]
    if absent:
        raise InputError(
            session.path,
            field,
            f"no unit is in region {', '.join(map(repr, absent))}; the file's units are in "
            f"{', '.join(session.all_regions)}",
        )
    keep = session.units["region"].isin(regions).to_numpy()
    empty = [r for r in regions if r not in set(session.units["region"][keep])]
    if empty:
        log.warning("%s: every unit of %s fails the unit filter", session.path.name, empty)
    session.spike_times, session.spike_index = select_units(
        session.spike_times, session.spike_index, keep
    )
    session.units = session.units[keep]
    return session


# --- The generic reader -----------------------------------------------------------------------


@dataclass
class SpikingSession:
    """One generic NWB session as read (units already filtered)."""

    path: Path
    session_id: str
    units: pd.DataFrame  # index unit id; columns region, probe (if known), + scalar unit columns
    spike_times: np.ndarray
    spike_index: np.ndarray
    intervals: dict[str, pd.DataFrame]  # the interval tables read, indexed by row id
    epoch_blocks: pd.DataFrame  # stimulus (the epoch label), start, stop
    behavior: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)
    units_in_file: int = 0
    all_regions: tuple[str, ...] = ()


def _interval_tables(nwb) -> dict[str, Any]:
    """Every TimeIntervals of the file by name (trials, epochs, invalid_times, intervals/*)."""
    tables = dict(nwb.intervals or {})
    for name in ("trials", "epochs", "invalid_times"):
        table = getattr(nwb, name, None)
        if table is not None:
            tables.setdefault(name, table)
    return tables


def read_interval_table(nwb, path: Path, name: str, key: str) -> tuple[pd.DataFrame, list]:
    """An interval table's scalar columns (index: row id) and its tags (a list per row); a table
    the file lacks is an error listing the tables it has."""
    tables = _interval_tables(nwb)
    if name not in tables:
        raise InputError(
            path,
            f"intervals/{name}",
            f"no such interval table ({key}); the file has: {', '.join(sorted(tables)) or 'none'}",
        )
    table = tables[name]
    frame = pd.DataFrame(_scalar_columns(table, path, f"intervals/{name}"))
    frame.index = pd.Index(np.asarray(table.id.data[:], dtype=np.int64), name="trial")
    tags = [list(map(str, t)) for t in table["tags"][:]] if "tags" in table.colnames else []
    return frame, tags


def _missing_column(path: Path, where: str, column: str, frame: pd.DataFrame, key: str):
    return InputError(
        path,
        f"{where}/{column}",
        f"no such column ({key}); the table has: {', '.join(map(str, frame.columns))}",
    )


def _electrode_of_units(nwb, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Each unit's region and probe from its first ``electrodes`` row, else from its
    ``electrode_group``; None when the units reference neither."""
    from hdmf.common import VectorIndex

    units = nwb.units
    n = len(units.id)
    if "electrodes" in units.colnames:
        column = units["electrodes"]
        if isinstance(column, VectorIndex):  # ragged: the usual layout (several channels a unit)
            ends = np.asarray(column.data[:], dtype=np.int64)
            rows_all = np.asarray(column.target.data[:], dtype=np.int64)
            starts = np.concatenate([[0], ends[:-1]])
            if np.any(ends <= starts):
                raise InputError(path, "units/electrodes", "a unit references no electrode")
            rows = rows_all[starts]
        else:
            rows = np.asarray(column.data[:], dtype=np.int64)
        electrodes = read_electrodes(nwb, path)
        if len(rows) != n or rows.min(initial=0) < 0 or rows.max(initial=0) >= len(electrodes):
            raise InputError(
                path, "units/electrodes", "references rows outside the electrodes table"
            )
        picked = electrodes.iloc[rows]
        return picked["location"].to_numpy(dtype=str), picked["probe"].to_numpy(dtype=str)
    if "electrode_group" in units.colnames:
        groups = units["electrode_group"].data[:]
        return (
            np.array([str(g.location) for g in groups]),
            np.array([str(g.name) for g in groups]),
        )
    return None


def _unit_regions(nwb, units: pd.DataFrame, path: Path, region_column: str | None):
    units = units.copy()
    electrodes = _electrode_of_units(nwb, path)
    if electrodes is not None:
        units["probe"] = electrodes[1]
    if region_column is not None:
        if region_column not in units:
            raise InputError(
                path,
                f"units/{region_column}",
                f"no such unit column ({KEY}.region_column); the units have: "
                f"{', '.join(nwb.units.colnames)}",
            )
        units["region"] = units[region_column].astype(str)
    elif electrodes is not None:
        units["region"] = electrodes[0]
    else:
        log.warning(
            "%s: units have no electrodes reference and %s.region_column is null: every unit's "
            "region is %r",
            path.name,
            KEY,
            UNKNOWN_REGION,
        )
        units["region"] = UNKNOWN_REGION
    return units


def numeric_unit_filter(units: pd.DataFrame, unit_filter: dict | None, path: Path) -> np.ndarray:
    """Units passing ``{column: {min: a, max: b}}`` on numeric unit columns (a bound set to null
    is not applied; NaN fails, as in AllenSDK's filter)."""
    keep = np.ones(len(units), dtype=bool)
    for column, bounds in (unit_filter or {}).items():
        if column not in units:
            raise InputError(
                path,
                f"units/{column}",
                f"no such unit column for {KEY}.unit_filter; the units have: "
                f"{', '.join(map(str, units.columns))}",
            )
        values = units[column].to_numpy()
        if values.dtype.kind not in "biuf":
            raise InputError(path, f"units/{column}", f"not numeric ({KEY}.unit_filter)")
        ok = np.isfinite(values.astype(float))
        if (bounds or {}).get("min") is not None:
            ok &= values >= bounds["min"]
        if (bounds or {}).get("max") is not None:
            ok &= values <= bounds["max"]
        log.info("%s: unit filter on %s drops %d units", path.name, column, int((~ok).sum()))
        keep &= ok
    return keep


def _series_of(container) -> list:
    """The TimeSeries of a behaviour data interface (itself, or those a container holds)."""
    for attribute in ("spatial_series", "time_series"):
        inner = getattr(container, attribute, None)
        if isinstance(inner, dict) or hasattr(inner, "values"):
            return list(inner.values())
    return [container] if hasattr(container, "data") and hasattr(container, "rate") else []


def read_behavior(nwb, path: Path, module_name: str | None) -> list:
    """``(variable, time, values)`` of every behavioural series of ``processing/<module_name>``."""
    from pynwb.behavior import SpatialSeries

    if module_name is None or not nwb.processing or module_name not in nwb.processing:
        return []
    out = []
    for name, interface in nwb.processing[module_name].data_interfaces.items():
        for series in _series_of(interface):
            data = np.asarray(series.data[:], dtype=np.float64)
            if series.timestamps is not None:
                time = np.asarray(series.timestamps[:], dtype=np.float64)
            else:
                time = series.starting_time + np.arange(len(data)) / series.rate
            if data.ndim == 1:
                data = data[:, None]
                labels = [series.name]
            elif data.ndim == 2:
                axes = ["x", "y", "z"] if isinstance(series, SpatialSeries) else None
                labels = [
                    f"{series.name}_{axes[k] if axes and data.shape[1] <= 3 else k}"
                    for k in range(data.shape[1])
                ]
            else:
                log.info("%s: behaviour %s/%s has >2 dims, skipped", path.name, name, series.name)
                continue
            if len(time) != len(data):
                raise InputError(
                    path,
                    f"processing/{module_name}/{series.name}/timestamps",
                    f"{len(time)} timestamps for {len(data)} samples",
                )
            out.extend((label, time, data[:, k]) for k, label in enumerate(labels))
    return out


def resample_behavior(behavior: list, time: np.ndarray) -> xr.DataArray | None:
    """``behavior(time, variable)``: each series linearly interpolated at the bin centres (NaN
    outside its samples)."""
    if not behavior:
        return None
    columns = []
    for _, t, v in behavior:
        good = np.isfinite(t) & np.isfinite(v)
        order = np.argsort(t[good], kind="stable")
        columns.append(np.interp(time, t[good][order], v[good][order], left=np.nan, right=np.nan))
    return xr.DataArray(
        np.stack(columns, axis=1),
        dims=("time", "variable"),
        coords={"variable": [name for name, _, _ in behavior]},
    )


def epoch_blocks(frame: pd.DataFrame, tags: list, table: str, label_column: str | None, path):
    """One block per epoch row: its label (``label_column``, else its first tag, else the table
    name), start and stop."""
    if label_column is not None:
        if label_column not in frame:
            raise _missing_column(
                path, f"intervals/{table}", label_column, frame, f"{KEY}.epochs.label_column"
            )
        labels = frame[label_column].astype(str).to_numpy()
    elif tags:
        labels = np.array([t[0] if t else table for t in tags], dtype=str)
    else:
        labels = np.full(len(frame), table, dtype=object).astype(str)
    blocks = pd.DataFrame(
        {"stimulus": labels, "start": frame["start_time"], "stop": frame["stop_time"]}
    )
    return blocks.sort_values("start", kind="stable").reset_index(drop=True)


def alignments_for(spec: dict, params: dict) -> dict[str, dict]:
    """The trial alignments of a dataset: its own ``alignments`` entry replaces the stage's."""
    return dict(spec.get("alignments", params["alignments"]) or {})


def check_alignments(alignments: dict) -> None:
    """Configuration checks that need no file (run before anything is read)."""
    for name, options in alignments.items():
        key = f"{KEY}.alignments.{name}"
        if name == COUNTS:
            raise ConfigError(f"{key}: the name {COUNTS!r} is the session counts' file")
        check_bin_size(options["bin_size_s"], f"{key}.bin_size_s")
        a, b = options["window_s"]
        if not b > a:
            raise ConfigError(f"{key}.window_s: end {b} must be after start {a}")


def read_session(path: str | Path, params: dict) -> SpikingSession:
    """Units (regions, filter), the interval tables the config names and the behaviour."""
    path = Path(path)
    io, nwb = open_nwb(path)
    try:
        units, times, index = read_units(nwb, path)
        units = units.drop(columns=["electrodes"], errors="ignore")  # a one-channel region
        units = _unit_regions(nwb, units, path, params["region_column"])
        all_regions = tuple(sorted(set(units["region"])))
        keep = numeric_unit_filter(units, params["unit_filter"], path)
        times, index = keep_units(times, index, keep, path)
        intervals = {}
        for name, options in params["alignments"].items():
            table = options["table"]
            if table not in intervals:
                intervals[table], _ = read_interval_table(
                    nwb, path, table, f"{KEY}.alignments.{name}.table"
                )
        blocks = pd.DataFrame({"stimulus": [], "start": [], "stop": []})
        epochs = params["epochs"]
        if epochs is not None:
            table = epochs["table"]
            if table == "epochs" and table not in _interval_tables(nwb):
                log.info("%s: no epochs table; epoch(time) is %r", path.name, NO_EPOCH)
            else:
                frame, tags = read_interval_table(nwb, path, table, f"{KEY}.epochs.table")
                intervals.setdefault(table, frame)
                blocks = epoch_blocks(frame, tags, table, epochs["label_column"], path)
        session = SpikingSession(
            path=path,
            session_id=str(nwb.session_id or nwb.identifier),
            units=units[keep],
            spike_times=times,
            spike_index=index,
            intervals=intervals,
            epoch_blocks=blocks,
            behavior=read_behavior(nwb, path, params["behavior_module"]),
            units_in_file=len(units),
            all_regions=all_regions,
        )
    finally:
        io.close()
    return session


def session_counts(session: SpikingSession, bin_size_s: float) -> xr.Dataset:
    """``counts.nc`` of a generic session: the bins span the spikes and every interval table
    read; ``behavior(time, variable)`` where the file has behaviour."""
    ds = session_counts_dataset(
        session, session.intervals.values(), bin_size_s, session.epoch_blocks
    )
    behavior = resample_behavior(session.behavior, ds["time"].values)
    if behavior is not None:
        ds["behavior"] = behavior
    ds.attrs.update(
        session_id=session.session_id,
        source=str(session.path),
        units_in_file=session.units_in_file,
        units_kept=len(session.units),
    )
    return ds


def trial_responses(
    session: SpikingSession, name: str, options: dict, extent: tuple[float, float]
) -> xr.Dataset:
    """``responses(trial, neuron, time)`` of one configured alignment: the trials of
    ``options["table"]`` aligned on ``options["column"]`` (NaN: trial dropped, counted in the
    log), every column as a trial variable, ``condition`` from the condition columns and
    ``frame`` its integer code (the stimulus identity geometry groups by), and the behaviour at
    the trial's bin centres as ``behavior(trial, time, variable)``."""
    key = f"{KEY}.alignments.{name}"
    table_name, column = options["table"], options["column"]
    where = f"intervals/{table_name}"
    table = session.intervals[table_name]
    if column not in table:
        raise _missing_column(session.path, where, column, table, f"{key}.column")
    for condition_column in options["condition"]:
        if condition_column not in table:
            raise _missing_column(session.path, where, condition_column, table, f"{key}.condition")
    onsets = table[column].to_numpy()
    if onsets.dtype.kind not in "biuf":
        raise InputError(session.path, f"{where}/{column}", f"not numeric times ({key}.column)")
    onsets = onsets.astype(float)
    kept = np.isfinite(onsets)
    if not kept.all():
        log.info(
            "%s: %s: %d of %d trials have no %s (NaN) and are dropped",
            session.path.name,
            name,
            int((~kept).sum()),
            len(kept),
            column,
        )
    table, onsets = table[kept], onsets[kept]
    if len(table) == 0:
        raise InputError(session.path, f"{where}/{column}", f"no trial has a {column} ({key})")
    a, b = map(float, options["window_s"])
    outside = (onsets + a < extent[0] - 1e-9) | (onsets + b > extent[1] + 1e-9)
    if outside.any():
        first = table.index[outside][0]
        raise InputError(
            session.path,
            f"{where}/{column}",
            f"the window [{a:g}, {b:g}] s ({key}.window_s) of {int(outside.sum())} trials reaches "
            f"outside the session [{extent[0]:g}, {extent[1]:g}] s (first: trial {first}, "
            f"{column} = {onsets[outside][0]:g} s)",
        )
    table = table.rename(columns={c: f"trial_{c}" for c in RESERVED if c in table})
    if options["condition"] or "condition" not in table:
        labels = (
            table[options["condition"]].astype(str).agg("|".join, axis=1).to_numpy(dtype=str)
            if options["condition"]
            else np.full(len(table), "all")
        )
        table = table.assign(condition=labels)
    if "frame" not in table:
        codes = np.unique(table["condition"].astype(str), return_inverse=True)[1]
        table = table.assign(frame=codes)
    ds = aligned_responses(
        session.spike_times,
        session.spike_index,
        session.units,
        table,
        onsets,
        options["window_s"],
        float(options["bin_size_s"]),
        relative_to=column,
    )
    grid = onsets[:, None] + ds["time"].values[None, :]
    behavior = resample_behavior(session.behavior, grid.ravel())
    if behavior is not None:  # the behaviour on the trial's bins, for decoding from responses
        ds = ds.assign_coords(variable=behavior["variable"].values)
        ds["behavior"] = (
            ("trial", "time", "variable"),
            behavior.values.reshape(*grid.shape, behavior.sizes["variable"]),
        )
    ds.attrs.update(
        stimulus_name=name,
        alignment_table=table_name,
        alignment_column=column,
        condition_columns=list(options["condition"]),
        trials_dropped_nan=int((~kept).sum()),
        session_id=session.session_id,
        source=str(session.path),
    )
    return ds


def ingest_session(path: str | Path, spec: dict, params: dict) -> dict[str, xr.Dataset]:
    """The outputs of one session: ``{"counts": ..., <alignment>: ...}``. ``params`` is
    ``stages.ingest.spikes``; every check runs before anything is returned, so a bad input or
    setting leaves no output."""
    bin_size_s = check_bin_size(params["bin_size_s"], f"{KEY}.bin_size_s")
    params = {**params, "alignments": alignments_for(spec, params)}
    check_alignments(params["alignments"])
    session = read_session(path, params)
    outputs = {COUNTS: session_counts(session, bin_size_s)}
    time = outputs[COUNTS]["time"].values
    extent = (float(time[0] - bin_size_s / 2), float(time[-1] + bin_size_s / 2))
    for name, options in params["alignments"].items():
        outputs[name] = trial_responses(session, name, options, extent)
    return outputs


def read_recording(spec: dict, recording: str, files: list[Path], params: dict):
    """The format registry's reader (kind spikes, format nwb)."""
    return ingest_session(files[0], spec, params)
