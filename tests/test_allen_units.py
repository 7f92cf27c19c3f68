"""Allen units, channels and probes read exactly as AllenSDK keeps them.

Sessions are written in the real layout by the simulator (every channel of each probe, channels
above the brain and reference channels with units on them, the ``ndx-aibs-ecephys`` types), and
the reader's units are checked against an independent implementation, in this file, of
AllenSDK's unit rules, read with h5py and pandas straight from the file:
``Channels.from_nwb`` / ``Channels.to_dataframe`` (``allensdk/brain_observatory/ecephys/
_channels.py``), ``Probes.get_units_table`` (``probes.py``) and the inner merge of
``EcephysSession._build_units_table`` (``ecephys_session.py``), AllenSDK v2.16.
"""

from __future__ import annotations

import logging
import shutil
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodag.errors import InputError
from neurodag.ingest_allen import ingest_session
from neurodag.io.allen_nwb import DEFAULT_UNIT_FILTER, read_session
from neurodag.simulate.allen import (
    CHANNELS_PER_PROBE,
    FILTER_FAILURES,
    compose_session,
    write_session,
)
from neurodag.simulate.demo_pieces import spontaneous_states, static_gratings

ELECTRODES = "general/extracellular_ephys/electrodes"
SPEC = {"kind": "allen", "format": "allen-nwb", "path": "x"}
PARAMS = {
    "bin_size_s": 0.05,
    "regions": None,
    "unit_filter": dict(DEFAULT_UNIT_FILTER),
    "responses": {},
    "invalid_presentations": "drop",
}


def _text(values) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def allensdk_units(
    path,
    *,
    filter_by_validity: bool = True,
    filter_out_of_brain_units: bool = True,
    amplitude_cutoff_maximum: float | None = 0.1,
    presence_ratio_minimum: float | None = 0.95,
    isi_violations_maximum: float | None = 0.5,
) -> pd.DataFrame:
    """AllenSDK's units table (the columns these tests need), from the file with h5py."""
    with h5py.File(path, "r") as f:
        e = f[ELECTRODES]
        channels = pd.DataFrame(
            {
                "location": _text(e["location"][:]),
                "valid_data": e["valid_data"][:].astype(bool),
                "x": e["x"][:],
                "y": e["y"][:],
                "z": e["z"][:],
                "probe_description": _text(e["group_name"][:]),
                "probe_vertical_position": e["probe_vertical_position"][:],
                "probe_horizontal_position": e["probe_horizontal_position"][:],
            },
            index=pd.Index(e["id"][:], name="id"),
        )
        u = f["units"]
        units = pd.DataFrame(
            {
                "peak_channel_id": u["peak_channel_id"][:],
                "quality": _text(u["quality"][:]),
                "amplitude_cutoff": u["amplitude_cutoff"][:],
                "presence_ratio": u["presence_ratio"][:],
                "isi_violations": u["isi_violations"][:],
            },
            index=pd.Index(u["id"][:], name="id"),
        )
    # Channels.from_nwb: 'None' and '' are no structure; the substructure is stripped
    channels["structure_acronym"] = [
        None if loc in ("None", "") else loc.split("-")[0] for loc in channels["location"]
    ]
    channels = channels.drop(columns="location")

    def channel_table(by_validity):  # Channels.to_dataframe
        table = channels[channels["valid_data"]] if by_validity else channels
        return table.drop(columns="valid_data") if by_validity else table

    # Probes.get_units_table
    if filter_by_validity or filter_out_of_brain_units:
        kept_channels = channel_table(filter_by_validity)
        if filter_out_of_brain_units:
            kept_channels = kept_channels[~kept_channels["structure_acronym"].isna()]
        units = units[units["peak_channel_id"].isin(set(kept_channels.index))]
    if filter_by_validity:
        units = units[units["quality"] == "good"]
    units = units[units["amplitude_cutoff"] <= (amplitude_cutoff_maximum or np.inf)]
    units = units[units["presence_ratio"] >= (presence_ratio_minimum or -np.inf)]
    units = units[units["isi_violations"] <= (isi_violations_maximum or np.inf)]
    # EcephysSession._build_units_table: inner merge with the (validity-filtered) channels, then
    # sorted by probe and the peak channel's position on it
    table = pd.merge(
        units, channel_table(filter_by_validity), left_on="peak_channel_id", right_index=True
    )
    return table.sort_values(
        by=["probe_description", "probe_vertical_position", "probe_horizontal_position"]
    )


def write(tmp_path, seed: int = 3, n_filtered_units: int = 12, **sizes):
    session = compose_session(
        [
            spontaneous_states(seed=seed, **sizes.get("states", {})),
            static_gratings(seed=seed + 1, **sizes.get("gratings", {})),
        ],
        seed=seed,
        n_filtered_units=n_filtered_units,
    )
    nwb, truth = write_session(session, tmp_path, parameters={})
    return session, nwb, truth


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    return write(tmp_path_factory.mktemp("units"))


def assert_same_units(read, expected: pd.DataFrame):
    assert list(read.units.index) == list(expected.index)  # the same units, in the same order
    got = read.units.loc[expected.index]
    np.testing.assert_array_equal(got["structure_acronym"], expected["structure_acronym"])
    np.testing.assert_array_equal(got["region"], expected["structure_acronym"])
    # units per region: AllenSDK's structurewise_unit_counts
    assert read.units["region"].value_counts().to_dict() == (
        expected["structure_acronym"].value_counts().to_dict()
    )
    for ours, sdk in (
        ("anterior_posterior_ccf_coordinate", "x"),
        ("dorsal_ventral_ccf_coordinate", "y"),
        ("left_right_ccf_coordinate", "z"),
    ):
        np.testing.assert_array_equal(got[ours], expected[sdk])


def test_the_file_holds_every_channel_and_units_on_bad_channels(simulated):
    session, nwb, _ = simulated
    with h5py.File(nwb, "r") as f:
        e = f[ELECTRODES]
        probes = pd.Series(_text(e["group_name"][:])).value_counts()
        assert (probes == CHANNELS_PER_PROBE).all()
        location = _text(e["location"][:])
        valid = e["valid_data"][:]
        channel = dict(zip(e["id"][:], range(len(location)), strict=True))
        assert valid.dtype == bool and e["probe_id"].dtype == np.int64
        assert (location == "").any() and (~valid & (location != "")).any()
        rows = [channel[c] for c in f["units/peak_channel_id"][:]]
        assert (location[rows] == "").sum() == 2  # 12 filtered units, one criterion each in turn
        assert (~valid[rows]).sum() == 2
        # ragged waveform_mean: every channel of the unit's probe, 82 samples
        n_units = len(f["units/id"])
        assert f["units/waveform_mean"].shape == (n_units * CHANNELS_PER_PROBE, 82)
        np.testing.assert_array_equal(
            f["units/waveform_mean_index"][:], CHANNELS_PER_PROBE * np.arange(1, n_units + 1)
        )
        # the extension types, their namespace cached in the file
        assert "ndx-aibs-ecephys" in f["specifications"]
        assert f["general/devices/probeA"].attrs["neurodata_type"] == "EcephysProbe"
        group = f["general/extracellular_ephys/probeA"]
        assert group.attrs["neurodata_type"] == "EcephysElectrodeGroup"
        assert f["general/subject"].attrs["neurodata_type"] == "EcephysSpecimen"
        assert f["general/subject"].attrs["strain"] == "C57BL/6J"
        assert f["units/quality"].dtype.kind == "O" and f["units/cluster_id"].dtype == np.int64


def test_default_filter_keeps_what_allensdk_keeps(simulated, caplog):
    session, nwb, truth = simulated
    with caplog.at_level(logging.INFO):
        read = read_session(nwb, unit_filter=DEFAULT_UNIT_FILTER)
    expected = allensdk_units(nwb)
    assert_same_units(read, expected)
    # and that is every planted unit, no filtered one
    assert sorted(expected.index) == sorted(session.units.index[session.units["piece"] != "none"])
    # each criterion drops its planted units (two each), in the log and the counts
    for key in ("filter_by_validity", "filter_out_of_brain_units", "quality"):
        assert f"unit filter {key}=" in caplog.text
        assert read.filter_counts[f"dropped_{key}"] == 2
    assert read.filter_counts["kept"] == len(expected)


@pytest.mark.parametrize(
    ("ours", "sdk"),
    [
        (
            {"filter_by_validity": None, "quality": None},
            {"filter_by_validity": False},
        ),
        ({"filter_out_of_brain_units": False}, {"filter_out_of_brain_units": False}),
        (
            {"amplitude_cutoff_max": None, "isi_violations_max": None},
            {"amplitude_cutoff_maximum": None, "isi_violations_maximum": None},
        ),
        ({"presence_ratio_min": 0.5}, {"presence_ratio_minimum": 0.5}),
    ],
)
def test_each_criterion_configurable_as_allensdk(simulated, ours, sdk):
    _, nwb, _ = simulated
    read = read_session(nwb, unit_filter={**DEFAULT_UNIT_FILTER, **ours})
    expected = allensdk_units(nwb, **sdk)
    kept_out_of_brain = expected["structure_acronym"].isna()
    if kept_out_of_brain.any():  # AllenSDK: no acronym (NaN); here "" and region "unknown"
        got = read.units.loc[expected.index[kept_out_of_brain]]
        assert (got["structure_acronym"] == "").all() and (got["region"] == "unknown").all()
        expected = expected[~kept_out_of_brain]
        read.units = read.units.drop(index=got.index)
    assert_same_units(read, expected)


def test_counts_carry_the_units_channel_and_waveform_metrics(simulated):
    _, nwb, _ = simulated
    counts = ingest_session(nwb, SPEC, PARAMS)["counts"]
    expected = allensdk_units(nwb)
    for coord in (
        "structure_acronym",
        "anterior_posterior_ccf_coordinate",
        "dorsal_ventral_ccf_coordinate",
        "left_right_ccf_coordinate",
    ):
        assert coord in counts.coords and counts[coord].dims == ("neuron",)
    order = counts["neuron"].values.astype(np.int64)
    np.testing.assert_array_equal(
        counts["dorsal_ventral_ccf_coordinate"].values, expected.loc[order, "y"].to_numpy()
    )
    # the waveform metrics by AllenSDK's units-table names (EcephysSession._build_units_table)
    for name in ("waveform_amplitude", "waveform_PT_ratio", "waveform_duration", "L_ratio"):
        assert counts[name].dims == ("neuron",)
    assert np.isnan(counts["waveform_velocity_above"].values).any()  # NaN metrics carried
    assert {"probe_channel_number", "probe_vertical_position", "probe_id"} <= set(counts)
    assert counts.attrs["units_dropped_filter_out_of_brain_units"] == 2
    assert counts.attrs["units_kept"] == len(expected)


def test_legacy_nwb_222_typing_reads_without_complaint(simulated, tmp_path):
    """The released files are NWB 2.2.2 (core 2.2.2, hdmf-common 1.1.3 cached; the electrodes a
    plain DynamicTable of hdmf-common); marked so, the file reads the same, with no warning."""
    _, nwb, _ = simulated
    legacy = tmp_path / "legacy.nwb"
    shutil.copy(nwb, legacy)
    with h5py.File(legacy, "a") as f:
        f.attrs["nwb_version"] = "2.2.2"
        electrodes = f[ELECTRODES]
        electrodes.attrs["neurodata_type"] = "DynamicTable"
        electrodes.attrs["namespace"] = "hdmf-common"
        spec = f["specifications"]
        for namespace, version in (("core", "2.2.2"), ("hdmf-common", "1.1.3")):
            (current,) = spec[namespace]
            spec.move(f"{namespace}/{current}", f"{namespace}/{version}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read = read_session(legacy, unit_filter=DEFAULT_UNIT_FILTER)
    assert [str(w.message) for w in caught] == []
    assert_same_units(read, allensdk_units(legacy))


def test_peak_channel_not_in_electrodes_is_an_input_error(simulated, tmp_path):
    _, nwb, _ = simulated
    bad = tmp_path / "bad.nwb"
    shutil.copy(nwb, bad)
    with h5py.File(bad, "a") as f:
        f["units/peak_channel_id"][3] = 12345
    with pytest.raises(InputError) as error:
        read_session(bad, unit_filter=DEFAULT_UNIT_FILTER)
    message = str(error.value)
    assert str(bad) in message and "units/peak_channel_id" in message and "12345" in message


def test_missing_valid_data_names_the_column_and_the_key(simulated, tmp_path):
    _, nwb, _ = simulated
    bad = tmp_path / "bad.nwb"
    shutil.copy(nwb, bad)
    with h5py.File(bad, "a") as f:
        electrodes = f[ELECTRODES]
        del electrodes["valid_data"]
        names = [c for c in electrodes.attrs["colnames"] if c != "valid_data"]
        electrodes.attrs["colnames"] = names
    with pytest.raises(InputError, match="electrodes/valid_data.*filter_by_validity"):
        read_session(bad, unit_filter=DEFAULT_UNIT_FILTER)
    read = read_session(bad, unit_filter={**DEFAULT_UNIT_FILTER, "filter_by_validity": None})
    assert "valid_data" not in read.units


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), n_filtered=st.integers(0, 2 * len(FILTER_FAILURES)))
def test_random_sessions_keep_what_allensdk_keeps(tmp_path_factory, seed, n_filtered):
    sizes = {"states": {"n_neurons": 5, "n_time": 60}, "gratings": {"n_neurons": 4}}
    session, nwb, _ = write(tmp_path_factory.mktemp("r"), seed, n_filtered, **sizes)
    read = read_session(nwb, unit_filter=DEFAULT_UNIT_FILTER)
    expected = allensdk_units(nwb)
    assert_same_units(read, expected)
    assert len(session.units) - len(expected) == n_filtered
