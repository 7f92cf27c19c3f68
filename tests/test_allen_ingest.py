"""Allen Neuropixels ingest: the reader returns exactly what the simulator planted, the binning
equals a per-unit histogram, and every bad input stops with the file and field named."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil

import h5py
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodag.cli import main
from neurodag.errors import ConfigError, InputError
from neurodag.ingest_allen import ingest_session
from neurodag.io.allen_nwb import DEFAULT_UNIT_FILTER, parse_column, read_session
from neurodag.io.stimulus_images import read_images
from neurodag.simulate.allen import compose_session, image_folder, write_session
from neurodag.simulate.demo_pieces import spontaneous_states, static_gratings
from neurodag.spikes import align_spikes, bin_spikes, check_index

PARAMS = {
    "bin_size_s": 0.05,
    "regions": None,
    "unit_filter": dict(DEFAULT_UNIT_FILTER),
    "responses": {"static_gratings": {"window_s": [0.0, 0.25], "bin_size_s": 0.025}},
    "invalid_presentations": "drop",
}
SPEC = {"kind": "allen", "format": "allen-nwb", "path": "x"}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A small composed session written to NWB: (session in memory, nwb path, truth path)."""
    session = compose_session(
        [spontaneous_states(seed=1), static_gratings(seed=2)], seed=3, n_filtered_units=4
    )
    nwb, truth = write_session(session, tmp_path_factory.mktemp("sim"), parameters={})
    return session, nwb, truth


# -- binning ---------------------------------------------------------------------------------


@st.composite
def spike_trains(draw):
    n_units = draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(0, 40), min_size=n_units, max_size=n_units))
    times = [
        np.sort(np.array(draw(st.lists(st.floats(-1, 11), min_size=n, max_size=n))))
        for n in lengths
    ]
    flat = np.concatenate(times) if times else np.array([])
    return times, flat, np.cumsum(lengths)


@settings(max_examples=40, deadline=None)
@given(spike_trains(), st.floats(0.05, 2.0), st.floats(-0.5, 0.5))
def test_binning_equals_per_unit_histogram(trains, bin_size, start):
    per_unit, flat, index = trains
    n_bins = int(10 / bin_size)
    edges = start + np.arange(n_bins + 1) * bin_size
    expected = np.array([np.histogram(t, edges)[0] for t in per_unit])
    got = bin_spikes(flat, index, start, bin_size, n_bins)
    # np.histogram closes its last bin on the right; bin_spikes uses half-open bins throughout
    last_edge = np.array([np.sum(t == edges[-1]) for t in per_unit])
    expected[:, -1] -= last_edge
    # floor((t - start) / w) and histogram's edges can disagree for a spike on an edge
    on_edge = np.isclose(flat[:, None], edges[None, :], rtol=0, atol=1e-9).any()
    if not on_edge:
        np.testing.assert_array_equal(got, expected)
    assert got.sum() <= flat.size


@settings(max_examples=40, deadline=None)
@given(
    spike_trains(),
    st.lists(st.floats(0, 9), min_size=1, max_size=8),
    st.floats(-0.3, 0.0),
    st.floats(0.1, 1.5),
    st.floats(0.05, 0.3),
)
def test_alignment_equals_per_trial_histogram(trains, onsets, a, length, bin_size):
    """Also with overlapping windows (a spike then counts in each trial it falls in)."""
    per_unit, flat, index = trains
    onsets = np.array(onsets)
    got = align_spikes(flat, index, onsets, (a, a + length), bin_size)
    n_bins = got.shape[2]
    for k, onset in enumerate(onsets):
        edges = onset + a + np.arange(n_bins + 1) * bin_size
        if np.isclose(flat[:, None], edges[None, :], rtol=0, atol=1e-9).any():
            continue
        expected = np.array([np.histogram(t, edges)[0] for t in per_unit])
        np.testing.assert_array_equal(got[k], expected)


def test_binning_does_not_loop_over_units(monkeypatch):
    """Thousands of units are binned in a handful of bincount calls, not one per unit."""
    import neurodag.spikes as spikes

    calls = []
    real = np.bincount
    monkeypatch.setattr(spikes.np, "bincount", lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(0)
    n_units, per_unit = 3000, 50
    times = np.sort(rng.uniform(0, 100, (n_units, per_unit)), axis=1).ravel()
    index = np.arange(1, n_units + 1) * per_unit
    counts = spikes.bin_spikes(times, index, 0.0, 0.5, 200)
    assert counts.sum() == times.size and len(calls) <= 2
    calls.clear()
    spikes.align_spikes(times, index, np.arange(0, 90, 1.0), (0.0, 0.5), 0.01)
    assert len(calls) <= 32


def test_check_index():
    assert check_index(np.array([2, 5]), 5) is None
    assert "runs past" in check_index(np.array([2, 6]), 5)
    assert "non-decreasing" in check_index(np.array([3, 2]), 5)


def test_missing_text_reads_as_missing():
    np.testing.assert_array_equal(parse_column(np.array(["1", "N/A", "2.5"])), [1, np.nan, 2.5])
    assert parse_column(np.array(["3", "4"])).dtype == np.int64
    assert list(parse_column(np.array([b"VISp", b"N/A"]))) == ["VISp", ""]


# -- the simulated file reads back exactly --------------------------------------------------


def test_reader_returns_the_planted_units_spikes_regions(simulated):
    session, nwb, _ = simulated
    assert_planted_units(read_session(nwb, unit_filter=None), session)


def assert_planted_units(read, session):
    """Every planted unit read back, with its own spikes and columns (in AllenSDK's order, which
    test_allen_units checks, so matched by id here)."""
    assert sorted(read.units.index) == sorted(session.units.index)
    starts = np.r_[0, session.spike_index[:-1]]
    for position, unit in enumerate(read.units.index):
        k = session.units.index.get_loc(unit)
        planted = session.spike_times[starts[k] : session.spike_index[k]]
        np.testing.assert_array_equal(read.unit_spike_times(position), planted)
    assert read.spike_times.size == session.spike_times.size
    planted_units = session.units.loc[read.units.index]
    for column in ("region", "probe", "peak_channel_id", "quality", "amplitude_cutoff"):
        np.testing.assert_array_equal(read.units[column], planted_units[column])


def test_reader_returns_the_planted_stimulus_tables(simulated):
    session, nwb, _ = simulated
    read = read_session(nwb, unit_filter=None)
    assert set(read.presentations) == set(session.presentations)
    piece = static_gratings(seed=2)
    table = read.presentations["static_gratings"]
    np.testing.assert_array_equal(table["frame"], piece["frame"])
    np.testing.assert_array_equal(table["orientation"], piece["orientation"])  # N/A -> NaN
    assert np.isnan(table["orientation"]).sum() == 3
    np.testing.assert_allclose(
        table["start_time"], session.presentations["static_gratings"]["start_time"]
    )
    assert read.templates == {}  # as in the real files: the images are outside the file
    folder = read_images(image_folder(nwb.parent, "static_gratings"))
    np.testing.assert_array_equal(folder.images, piece["image"].values.astype(np.float32))
    np.testing.assert_allclose(read.running_speed["speed"], session.running_speed["speed"])
    np.testing.assert_allclose(read.running_speed["time"], session.running_speed["time"])
    assert read.invalid_times["tags"].tolist() == session.invalid_times["tags"].tolist()
    assert read.invalid_times["tags"].iloc[0] == ["EcephysSession", "3", "all_probes"]


def test_default_filter_drops_exactly_the_planted_failures(simulated, caplog):
    session, nwb, _ = simulated
    with caplog.at_level(logging.INFO):
        read = read_session(nwb, unit_filter=DEFAULT_UNIT_FILTER)
    planted_good = session.units.index[session.units["piece"] != "none"]
    assert sorted(read.units.index) == sorted(planted_good)
    assert "4 dropped" in caplog.text


def test_ingest_recovers_planted_counts_exactly(simulated):
    session, nwb, truth = simulated
    images = {"static_gratings": str(image_folder(nwb.parent, "static_gratings"))}
    outputs = ingest_session(nwb, {**SPEC, "images": images}, PARAMS)
    counts, responses = outputs["counts"], outputs["static_gratings"]
    # trial block: responses of the piece's units are the planted counts
    planted = xr.open_dataset(truth, group="static_gratings").load()
    got = responses["responses"].sel(neuron=planted["neuron"], trial=planted["trial"])
    np.testing.assert_array_equal(got.values, planted["planted_counts"].values)
    assert responses["image"].dims == ("frame", "y", "x")
    np.testing.assert_array_equal(responses["image_frame"], np.arange(responses.sizes["frame"]))
    np.testing.assert_array_equal(responses["frame"], static_gratings(seed=2)["frame"])
    # continuous block at the piece's bin size: the session counts are the planted counts
    states = xr.open_dataset(truth, group="spontaneous").load()
    block = counts["counts"].sel(neuron=states["neuron"]).sel(time=states["time"], method="nearest")
    np.testing.assert_array_equal(block.values, states["planted_counts"].values)
    assert set(counts["epoch"].sel(time=states["time"], method="nearest").values) == {"spontaneous"}
    assert counts.attrs["bin_size_s"] == 0.05
    assert set(counts["region"].values) <= {"LGd", "VISp"}
    # truth.nc is keyed by the same unit ids as the ingest
    root = xr.open_dataset(truth).load()
    kept = root["neuron"][root["passes_default_filter"]].values
    assert sorted(kept) == sorted(counts["neuron"].values)


def test_region_selection(simulated):
    _, nwb, _ = simulated
    outputs = ingest_session(nwb, SPEC, {**PARAMS, "regions": ["VISp"]})
    assert set(outputs["counts"]["region"].values) == {"VISp"}


# -- bad input: a clear error naming the file and field, and no output ----------------------


def _fails(tmp_path, nwb, *extra, params=PARAMS):
    """Run the CLI in this process (as the rule would, without the interpreter start-up):
    exit status 2, one message line, and no output written."""
    out = tmp_path / "out"
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        status = main(
            [
                "ingest",
                "--recording",
                "session",
                "--spec",
                json.dumps(SPEC),
                "--params",
                json.dumps({"allen": params}),
                "--input",
                str(nwb),
                "-o",
                str(out),
                *extra,
            ]
        )
    assert status == 2, errors.getvalue()
    assert not out.exists() or not any(out.iterdir())
    return errors.getvalue().strip().splitlines()[-1]


def _copy(simulated, tmp_path):
    target = tmp_path / "bad.nwb"
    shutil.copy(simulated[1], target)
    return target


def test_file_without_units_table(simulated, tmp_path):
    bad = _copy(simulated, tmp_path)
    with h5py.File(bad, "a") as f:
        del f["units"]
    with pytest.raises(InputError, match="units"):
        read_session(bad)
    message = _fails(tmp_path, bad)
    assert str(bad) in message and "units" in message


def test_spike_times_index_past_its_data(simulated, tmp_path):
    bad = _copy(simulated, tmp_path)
    with h5py.File(bad, "a") as f:
        index = f["units/spike_times_index"]
        index[-1] = f["units/spike_times"].shape[0] + 10
    message = _fails(tmp_path, bad)
    assert str(bad) in message and "units/spike_times_index" in message and "runs past" in message


def test_stimulus_table_without_start_time(simulated, tmp_path):
    bad = _copy(simulated, tmp_path)
    with h5py.File(bad, "a") as f:
        table = f["intervals/static_gratings_presentations"]
        del table["start_time"]
        table.attrs["colnames"] = [c for c in table.attrs["colnames"] if c != "start_time"]
    message = _fails(tmp_path, bad)
    assert str(bad) in message
    assert "static_gratings_presentations" in message and "start_time" in message


def test_peak_channel_not_in_electrodes(simulated, tmp_path):
    bad = _copy(simulated, tmp_path)
    with h5py.File(bad, "a") as f:
        f["units/peak_channel_id"][0] = 7
    message = _fails(tmp_path, bad)
    assert str(bad) in message and "units/peak_channel_id" in message and "channel 7" in message


def test_region_no_unit_has(simulated, tmp_path):
    _, nwb, _ = simulated
    with pytest.raises(InputError, match="VISpm"):
        ingest_session(nwb, SPEC, {**PARAMS, "regions": ["VISpm"]})
    message = _fails(tmp_path, nwb, params={**PARAMS, "regions": ["VISpm"]})
    assert str(nwb) in message and "electrodes/location" in message and "VISpm" in message


@pytest.mark.parametrize("bin_size", [0, -0.01, float("nan")])
def test_bin_size_not_positive(simulated, bin_size):
    _, nwb, _ = simulated
    with pytest.raises(ConfigError, match="stages.ingest.allen.bin_size_s"):
        ingest_session(nwb, SPEC, {**PARAMS, "bin_size_s": bin_size})
    bad_window = {"static_gratings": {"window_s": [0, 0.25], "bin_size_s": bin_size}}
    with pytest.raises(ConfigError, match="responses.static_gratings.bin_size_s"):
        ingest_session(nwb, SPEC, {**PARAMS, "responses": bad_window})


def test_bin_size_not_positive_from_the_cli(simulated, tmp_path):
    _, nwb, _ = simulated
    message = _fails(tmp_path, nwb, params={**PARAMS, "bin_size_s": 0})
    assert "stages.ingest.allen.bin_size_s" in message


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)), min_size=1))
def test_text_columns_round_trip_numbers_and_missing(values):
    """Numbers written as Allen text (repr, "N/A" for missing) parse back exactly."""
    text = np.array(["N/A" if v is None else repr(float(v)) for v in values], dtype=object)
    parsed = parse_column(text).astype(float)
    expected = np.array([np.nan if v is None else float(v) for v in values])
    np.testing.assert_array_equal(parsed, expected)


@pytest.mark.slow
@settings(max_examples=6, deadline=None)
@given(
    st.integers(0, 2**16),
    st.integers(1, 6),
    st.integers(0, 3),
    st.sampled_from([0.01, 0.025, 0.05]),
)
def test_random_sessions_read_back_exactly(tmp_path_factory, seed, n_neurons, n_blank, dt):
    """Any composed session: the reader returns its units, spikes and stimulus tables."""
    pieces = [
        spontaneous_states(n_neurons=n_neurons, n_time=40, dt_s=dt, seed=seed),
        static_gratings(n_neurons=n_neurons, n_blank=n_blank, repeats=2, dt_s=dt, seed=seed + 1),
    ]
    session = compose_session(pieces, seed=seed, n_filtered_units=2)
    nwb, _ = write_session(session, tmp_path_factory.mktemp("rt"), parameters={})
    read = read_session(nwb, unit_filter=None)
    assert_planted_units(read, session)
    table = read.presentations["static_gratings"]
    np.testing.assert_array_equal(table["orientation"], pieces[1]["orientation"])
    assert int(np.isnan(table["orientation"]).sum()) == n_blank
    outputs = ingest_session(
        nwb,
        SPEC,
        {
            **PARAMS,
            "unit_filter": None,
            "bin_size_s": dt,
            "responses": {"static_gratings": {"window_s": [0, 10 * dt], "bin_size_s": dt}},
        },
    )
    trials = outputs["static_gratings"]["responses"]
    units = session.units.index[session.units["piece"] == "static_gratings"].astype(str)
    planted = session.truth_groups["static_gratings"]["planted_counts"]
    np.testing.assert_array_equal(trials.sel(neuron=planted["neuron"]).values, planted.values)
    assert set(units) == set(planted["neuron"].values)
