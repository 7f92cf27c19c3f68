"""Reader for Allen Brain Observatory Visual Coding Neuropixels sessions (format ``allen-nwb``).

The sessions (Siegle et al., "Survey of spiking in the mouse visual system reveals functional
hierarchy", Nature 2021) are NWB 2 files (NWB 2.2.2 as released) written by AllenSDK's
``write_nwb`` with the ``ndx-aibs-ecephys`` extension. AllenSDK does not read them with pynwb 4,
so this reads them with pynwb directly, with ``load_namespaces=True`` so the extension types
cached in the file (``EcephysProbe``, ``EcephysElectrodeGroup``, ``EcephysSpecimen``) load
without the extension package. AllenSDK's ``EcephysSession`` (v2.x:
``brain_observatory/ecephys/ecephys_session.py``, ``ecephys_session_api/
ecephys_nwb_session_api.py``, ``probes.py``, ``_channels.py``) is the specification; every rule
taken from it is listed, with its function, in ``docs/data-model.md`` ("Reading"). What is read:

- ``units``: spike times (the flat ``spike_times`` column and its ``spike_times_index``) and every
  scalar column (quality and waveform metrics; ragged ``spike_amplitudes`` and ``waveform_mean``
  are passed over), the waveform metrics renamed as AllenSDK's units table names them
  (``amplitude`` -> ``waveform_amplitude``, ...), filtered with AllenSDK's default unit filter:
  peak channel ``valid_data``, peak channel inside the brain (a structure acronym), quality
  "good", amplitude_cutoff <= 0.1, presence_ratio >= 0.95, isi_violations <= 0.5;
- each unit's peak channel (``peak_channel_id``, a row of ``electrodes``, every channel of every
  probe): its structure acronym (``location``, the substructure stripped, as AllenSDK does) as the
  unit's ``region``, its CCF coordinates, probe channel number and positions, and its probe (the
  electrode's group);
- every ``intervals/*_presentations`` table (one row per stimulus presentation; parameter columns
  are numbers or text in Allen files, "N/A"/"null" meaning missing; the ragged ``tags`` and the
  compound ``timeseries`` columns are passed over), numbered, given conditions and checked against
  ``invalid_times`` by AllenSDK's rules (:mod:`neurodag.io.allen_stimuli`),
  ``processing/running/running_speed`` (timestamps or rate) and ``invalid_times`` (tags
  ``[scope, id, label]``), and image stimuli from ``stimulus_template`` where the file has them.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from neurodag.config import defaults
from neurodag.errors import InputError
from neurodag.io import allen_stimuli
from neurodag.io.nwb_spikes import (  # the generic NWB units reader (one code path)
    MISSING_TEXT,
    UNKNOWN_REGION,
    _scalar_columns,
    keep_units,
    open_nwb,
    parse_column,  # noqa: F401 (re-exported)
    read_electrodes,
    read_units,
)

log = logging.getLogger(__name__)

#: AllenSDK's default unit filter (EcephysSession defaults), as the config schema states it.
DEFAULT_UNIT_FILTER = defaults("stages.ingest.allen")["unit_filter"]
PRESENTATIONS_SUFFIX = "_presentations"
FILTER_KEY = "stages.ingest.allen.unit_filter"
#: What pynwb 4 says of the layout every Allen file has (AllenSDK write_nwb: the probes'
#: ``manufacturer``; the older core and hdmf-common namespaces cached in NWB 2.2.2 files): not
#: the reader's business, so not shown.
LAYOUT_WARNINGS = (
    "The 'manufacturer' field is deprecated",
    "Ignoring cached namespace",
)
#: AllenSDK's names for units-table columns (``EcephysSession._build_units_table``).
UNIT_RENAMES = {
    "PT_ratio": "waveform_PT_ratio",
    "amplitude": "waveform_amplitude",
    "duration": "waveform_duration",
    "halfwidth": "waveform_halfwidth",
    "recovery_slope": "waveform_recovery_slope",
    "repolarization_slope": "waveform_repolarization_slope",
    "spread": "waveform_spread",
    "velocity_above": "waveform_velocity_above",
    "velocity_below": "waveform_velocity_below",
    "l_ratio": "L_ratio",
}
#: Electrodes columns carried onto each unit from its peak channel, by AllenSDK's channel names
#: (``Channels.from_nwb``: ``x, y, z`` are the CCF coordinates, ``local_index`` the probe channel
#: number of the Visual Coding files).
CHANNEL_COLUMNS = {
    "x": "anterior_posterior_ccf_coordinate",
    "y": "dorsal_ventral_ccf_coordinate",
    "z": "left_right_ccf_coordinate",
    "local_index": "probe_channel_number",
    "probe_channel_number": "probe_channel_number",
    "probe_vertical_position": "probe_vertical_position",
    "probe_horizontal_position": "probe_horizontal_position",
    "probe_id": "probe_id",
    "valid_data": "valid_data",
}
#: Per-unit values that ``counts.nc`` keeps as coordinates on ``neuron`` (beside region, probe).
UNIT_COORDS = (
    "structure_acronym",
    "anterior_posterior_ccf_coordinate",
    "dorsal_ventral_ccf_coordinate",
    "left_right_ccf_coordinate",
)


@dataclass
class AllenSession:
    """One session as read from its NWB file (units already filtered)."""

    path: Path
    session_id: str
    units: pd.DataFrame  # index unit id (int); columns region, probe, + unit table scalars
    spike_times: np.ndarray  # flat, unit after unit, in the order of ``units``
    spike_index: np.ndarray  # end offset of each unit's spikes in ``spike_times``
    #: stimulus -> table indexed by stimulus_presentation_id (AllenSDK's, session-wide), with
    #: stimulus_condition_id and invalid_presentation columns
    presentations: dict[str, pd.DataFrame]
    running_speed: pd.DataFrame | None = None  # columns time (s), speed (cm/s)
    invalid_times: pd.DataFrame = field(default_factory=pd.DataFrame)
    templates: dict[str, np.ndarray] = field(default_factory=dict)  # stimulus -> (frame, y, x)
    filter_counts: dict[str, int] = field(default_factory=dict)
    all_regions: tuple[str, ...] = ()  # regions of every unit in the file, before filtering
    epochs: pd.DataFrame = field(default_factory=pd.DataFrame)  # stimulus, start, stop, block

    def unit_spike_times(self, position: int) -> np.ndarray:
        """Spike times of the unit at row ``position`` of ``units``."""
        start = self.spike_index[position - 1] if position > 0 else 0
        return self.spike_times[start : self.spike_index[position]]


def structure_acronyms(location: np.ndarray) -> np.ndarray:
    """AllenSDK's channel ``structure_acronym`` from the electrodes ``location``: missing ("" for
    a channel outside the brain; "None", NaN and the other missing texts too) or the acronym with
    its substructure stripped ("LGd-sh" -> "LGd"; ``Channels.from_nwb`` and
    ``strip_substructure_acronym``)."""
    text = np.array([str(v).strip() for v in location], dtype=object)
    missing = np.isin(text, list(MISSING_TEXT))
    stripped = np.array([t.split("-")[0] for t in text], dtype=object)
    return np.where(missing, "", stripped).astype(str)


def unit_regions(units: pd.DataFrame, electrodes: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Add what each unit's peak channel (its electrodes row) tells: ``structure_acronym``
    ("" outside the brain), ``region`` (the acronym; "unknown" outside the brain), ``probe`` (the
    electrode group) and the channel columns of ``CHANNEL_COLUMNS`` that the file has (CCF
    coordinates, probe channel number and positions, ``valid_data``). A ``peak_channel_id`` that
    is not a channel of the file is an error."""
    if "peak_channel_id" not in units:
        raise InputError(path, "units/peak_channel_id", "units have no peak_channel_id column")
    channel = units["peak_channel_id"].to_numpy()
    if channel.dtype.kind not in "iuf":
        raise InputError(path, "units/peak_channel_id", "peak channel ids must be numbers")
    if channel.dtype.kind == "f":
        if not np.isfinite(channel).all():
            raise InputError(path, "units/peak_channel_id", "missing peak channel ids")
        channel = channel.astype(np.int64)
    unknown = ~np.isin(channel, electrodes.index.to_numpy())
    if unknown.any():
        raise InputError(
            path,
            "units/peak_channel_id",
            f"{int(unknown.sum())} units point at channels not in the electrodes table "
            f"(e.g. unit {units.index[unknown][0]}: channel {channel[unknown][0]})",
        )
    units = units.rename(columns=UNIT_RENAMES)
    rows = electrodes.loc[channel]
    acronym = structure_acronyms(rows["location"].to_numpy())
    units["structure_acronym"] = acronym
    units["region"] = np.where(acronym == "", UNKNOWN_REGION, acronym)
    units["probe"] = rows["probe"].to_numpy()
    for column, name in CHANNEL_COLUMNS.items():
        if column in rows and name not in units:
            values = rows[column].to_numpy()
            units[name] = values.astype(bool) if column == "valid_data" else values
    return units


#: The unit filter's criteria, in AllenSDK's order (``Probes.get_units_table``): config key ->
#: (column, test of the column against the configured value).
UNIT_CRITERIA = {
    "filter_by_validity": ("valid_data", lambda col, v: col.astype(bool)),
    "filter_out_of_brain_units": ("structure_acronym", lambda col, v: col.astype(str) != ""),
    "quality": ("quality", lambda col, v: col.astype(str) == v),
    "amplitude_cutoff_max": ("amplitude_cutoff", lambda col, v: col.astype(float) <= v),
    "presence_ratio_min": ("presence_ratio", lambda col, v: col.astype(float) >= v),
    "isi_violations_max": ("isi_violations", lambda col, v: col.astype(float) <= v),
}


def unit_filter_mask(
    units: pd.DataFrame, unit_filter: dict | None, path: Path, counts: dict | None = None
) -> np.ndarray:
    """Which units pass the filter (AllenSDK's default unit filter, see ``UNIT_CRITERIA``); a
    criterion set to null (or false, for the two channel criteria) is not applied. NaN metrics
    fail (as in AllenSDK, where a comparison with NaN is false). The units each criterion drops
    (on its own) go to the log and to ``counts`` (``dropped_<criterion>``)."""
    keep = np.ones(len(units), dtype=bool)
    for key, (column, passes) in UNIT_CRITERIA.items():
        value = (unit_filter or {}).get(key)
        if value is None or value is False:
            continue
        if column not in units:
            where = "electrodes/valid_data" if column == "valid_data" else f"units/{column}"
            raise InputError(
                path,
                where,
                f"no such column for the unit filter; set {FILTER_KEY}.{key} to null to skip "
                "this criterion",
            )
        ok = passes(units[column].to_numpy(), value)
        dropped = int((~ok).sum())
        log.info("%s: unit filter %s=%s drops %d units", path.name, key, value, dropped)
        if counts is not None:
            counts[f"dropped_{key}"] = dropped
        keep &= ok
    return keep


def _whole_floats_as_int(values: np.ndarray) -> np.ndarray:
    """A float column whose values are all whole numbers (no NaN) as integers, as text columns of
    whole numbers read (``frame`` is float in Allen files)."""
    whole = values.dtype.kind == "f" and values.size and np.isfinite(values).all()
    if whole and np.all(values == np.round(values)) and np.all(np.abs(values) < 2**53):
        return values.astype(np.int64)
    return values


def read_presentation_tables(nwb, path: Path) -> dict[str, pd.DataFrame]:
    """Every ``*_presentations`` interval table, rows in file order (the file's per-table ids are
    not kept: AllenSDK numbers the presentations across tables); start times must not run
    backwards."""
    tables = {}
    for name, table in (nwb.intervals or {}).items():
        if not name.endswith(PRESENTATIONS_SUFFIX):
            continue
        where = f"intervals/{name}"
        for required in ("start_time", "stop_time"):
            if required not in table.colnames:
                raise InputError(path, f"{where}/{required}", "stimulus table has no such column")
        columns = _scalar_columns(table, path, where)
        frame = pd.DataFrame({k: _whole_floats_as_int(v) for k, v in columns.items()})
        frame["start_time"] = frame["start_time"].astype(float)
        frame["stop_time"] = frame["stop_time"].astype(float)
        allen_stimuli.check_start_order(frame, path, where)
        stimulus = name[: -len(PRESENTATIONS_SUFFIX)]
        if "stimulus_name" not in frame:
            frame["stimulus_name"] = stimulus
        tables[stimulus] = frame
    return tables


def read_presentations(
    nwb, path: Path, invalid_times: pd.DataFrame
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The stimulus tables as AllenSDK's ``EcephysSession`` reports them, and the stimulus epochs.

    Each table is indexed by ``stimulus_presentation_id`` (the row number of all tables stacked in
    start-time order) and gains ``stimulus_condition_id`` and ``invalid_presentation`` (overlaps
    an ``invalid_times`` interval tagged ``stimulus``); see :mod:`neurodag.io.allen_stimuli`."""
    tables = read_presentation_tables(nwb, path)
    merged = allen_stimuli.merge_presentations(tables)
    condition = allen_stimuli.condition_ids(tables, merged)
    invalid = allen_stimuli.invalid_presentations(merged, invalid_times)
    out = {}
    for name, frame in tables.items():
        rows = np.flatnonzero(merged["stimulus_table"].to_numpy() == name)
        order = merged["_row"].to_numpy()[rows]
        table = frame.iloc[order].copy()
        table.index = pd.Index(rows, name="stimulus_presentation_id")
        table["stimulus_condition_id"] = condition[rows]
        table["invalid_presentation"] = invalid[rows]
        out[name] = table
    if invalid.any():
        log.info(
            "%s: %d presentations overlap invalid_times tagged %r (invalid_presentation)",
            path.name,
            int(invalid.sum()),
            allen_stimuli.STIMULUS_TAG,
        )
    return out, allen_stimuli.stimulus_epochs(merged, invalid)


def read_running_speed(nwb) -> pd.DataFrame | None:
    module = nwb.processing.get("running") if nwb.processing else None
    if module is None or "running_speed" not in module.data_interfaces:
        return None
    series = module["running_speed"]
    speed = np.asarray(series.data[:], dtype=np.float64)
    if series.timestamps is not None:
        time = np.asarray(series.timestamps[:], dtype=np.float64)
    else:
        time = series.starting_time + np.arange(len(speed)) / series.rate
    return pd.DataFrame({"time": time, "speed": speed})


def read_invalid_times(nwb, path: Path) -> pd.DataFrame:
    """``invalid_times``: start, stop and each interval's tags as a list (``[scope, id, label]``
    in Allen files, e.g. ``["EcephysProbe", "7601", "probeA"]``)."""
    table = nwb.invalid_times
    if table is None or len(table.id) == 0:
        return pd.DataFrame({"start_time": [], "stop_time": [], "tags": []})
    frame = pd.DataFrame(_scalar_columns(table, path, "invalid_times"))
    tags = table["tags"][:] if "tags" in table.colnames else [[] for _ in range(len(frame))]
    frame["tags"] = allen_stimuli.tag_lists(tags)
    return frame[["start_time", "stop_time", "tags"]]


def read_templates(nwb) -> dict[str, np.ndarray]:
    """Image stimuli (frame, y, x) from ``stimulus_template``: an ``Images`` container (frames in
    ``order_of_images`` order, else by name) or an image series with 3-D data."""
    templates = {}
    for name, item in (nwb.stimulus_template or {}).items():
        stimulus = name.removesuffix("_template")
        if hasattr(item, "images"):
            if getattr(item, "order_of_images", None) is not None:
                images = list(item.order_of_images.data[:])
            else:
                images = [item.images[key] for key in sorted(item.images)]
            frames = [np.asarray(image.data[:], dtype=np.float64) for image in images]
            templates[stimulus] = np.stack(frames)
        elif getattr(item, "data", None) is not None and np.ndim(item.data) == 3:
            templates[stimulus] = np.asarray(item.data[:], dtype=np.float64)
    return templates


def allensdk_unit_order(units: pd.DataFrame) -> np.ndarray:
    """Positions of ``units`` in AllenSDK's order: by probe name, then the peak channel's
    vertical and horizontal position on the probe (``EcephysSession._build_units_table`` sorts
    by ``probe_description``, ``probe_vertical_position``, ``probe_horizontal_position``; ties
    keep the file order; a file without the positions keeps the file order within a probe)."""
    keys = [np.arange(len(units))]
    for name in ("probe_horizontal_position", "probe_vertical_position"):
        if name in units:
            keys.append(units[name].to_numpy(dtype=float))
    keys.append(units["probe"].astype(str).to_numpy())
    return np.lexsort(keys)


def read_session(path: str | Path, unit_filter: dict | None = None) -> AllenSession:
    """Read a session file; ``unit_filter`` as in ``DEFAULT_UNIT_FILTER`` (None: keep all)."""
    path = Path(path)
    with warnings.catch_warnings():
        for message in LAYOUT_WARNINGS:
            warnings.filterwarnings("ignore", message)
        io, nwb = open_nwb(path)
    try:
        units, times, index = read_units(nwb, path)
        units = unit_regions(units, read_electrodes(nwb, path), path)
        counts = {"units": len(units)}
        keep = unit_filter_mask(units, unit_filter, path, counts)
        counts["kept"] = int(keep.sum())
        kept = units[keep]
        order = allensdk_unit_order(kept)
        times, index = keep_units(times, index, keep, path, order)
        invalid_times = read_invalid_times(nwb, path)
        presentations, epochs = read_presentations(nwb, path, invalid_times)
        session = AllenSession(
            path=path,
            session_id=str(nwb.session_id or nwb.identifier),
            units=kept.iloc[order],
            spike_times=times,
            spike_index=index,
            presentations=presentations,
            running_speed=read_running_speed(nwb),
            invalid_times=invalid_times,
            templates=read_templates(nwb),
            filter_counts=counts,
            all_regions=tuple(sorted(set(units["region"]))),
            epochs=epochs,
        )
    finally:
        io.close()
    return session
