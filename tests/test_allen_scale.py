"""Real-size Allen sessions: streamed spike writing, block-wise reading of the kept units' spikes,
each input hashed once, counts in their final integer type, and the real-size preset."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodag.config import load_config
from neurodag.io import netcdf
from neurodag.io.allen_nwb import read_session
from neurodag.io.allen_stimuli import movie_repeats
from neurodag.io.nwb_spikes import SpikeColumn, select_units
from neurodag.simulate.allen import (
    FILLER,
    _streamed,
    compose_session,
    simulate,
    write_nwb,
)
from neurodag.simulate.demo_pieces import spontaneous_states, static_gratings
from neurodag.spikes import align_spikes, bin_spikes

PRESET = "allen_real_size.yaml"
FILTER = load_config([REPO / "config" / "config.yaml"])["stages"]["ingest"]["allen"]["unit_filter"]


@st.composite
def ragged(draw):
    lengths = draw(st.lists(st.integers(0, 12), min_size=1, max_size=25))
    keep = draw(st.lists(st.booleans(), min_size=len(lengths), max_size=len(lengths)))
    index = np.cumsum(lengths)
    times = np.arange(int(index[-1]), dtype=np.float64) * 0.5
    return times, index, np.array(keep)


@settings(max_examples=150, deadline=None)
@given(ragged(), st.integers(0, 20), st.integers(1, 30), st.randoms(use_true_random=False))
def test_block_reader_reads_what_a_full_read_then_filter_gives(trains, gap, block, random):
    times, index, keep = trains
    column = SpikeColumn(times, REPO)
    column.GAP, column.BLOCK = gap, block  # small, so runs are merged and split
    read, read_index = column.read(index, keep)
    expected, expected_index = select_units(times, index, keep)
    np.testing.assert_array_equal(read, expected)
    np.testing.assert_array_equal(read_index, expected_index)
    # in another order of the kept units: each unit's spikes, unit after unit in that order
    order = list(range(int(keep.sum())))
    random.shuffle(order)
    read, read_index = column.read(index, keep, np.array(order, dtype=int))
    trains_of = np.split(expected, expected_index[:-1]) if len(order) else []
    np.testing.assert_array_equal(read, np.concatenate([[]] + [trains_of[k] for k in order]))
    np.testing.assert_array_equal(
        np.diff(read_index, prepend=0), [len(trains_of[k]) for k in order]
    )


def test_block_reader_on_a_chunked_compressed_dataset(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 400, 60)
    index = np.cumsum(lengths)
    times = np.sort(rng.uniform(0, 100, int(index[-1])))
    keep = rng.random(60) < 0.4
    with h5py.File(tmp_path / "t.h5", "w") as handle:
        handle.create_dataset("t", data=times, chunks=(97,), compression="gzip")
    with h5py.File(tmp_path / "t.h5", "r") as handle:
        column = SpikeColumn(handle["t"], tmp_path)
        column.GAP, column.BLOCK = 50, 700
        read, read_index = column.read(index, keep)
    expected, expected_index = select_units(times, index, keep)
    np.testing.assert_array_equal(read, expected)
    np.testing.assert_array_equal(read_index, expected_index)


def test_block_reader_rejects_non_finite_kept_spikes():
    from neurodag.errors import InputError

    times = np.array([0.1, np.inf, 0.3])
    with pytest.raises(InputError, match="finite"):
        SpikeColumn(times, REPO).read(np.array([1, 2, 3]), np.array([True, True, False]))
    # a dropped unit's bad spike is never read
    read, _ = SpikeColumn(times, REPO).read(np.array([1, 2, 3]), np.array([True, False, True]))
    np.testing.assert_array_equal(read, [0.1, 0.3])


@pytest.fixture(scope="module")
def filled():
    """A small session with filler units and filler stimulus tables (the real-size preset's
    options at a toy size)."""
    pieces = [spontaneous_states(seed=1), static_gratings(seed=2)]
    stimuli = {
        "natural_movie_one": {"rows": 300, "duration_s": 1 / 30, "frames": 100},
        "flashes": {"rows": 5, "duration_s": 0.25, "interval_s": 2.0},
    }
    return compose_session(
        pieces,
        seed=3,
        background_rate_hz=4.0,
        n_filtered_units=7,
        n_filler_units=11,
        filler_regions=["CA1", "APN"],
        stimuli=stimuli,
    )


def test_filler_units_and_tables(filled):
    units = filled.units
    assert (units["piece"] == FILLER).sum() == 11
    assert set(units.loc[units["piece"] == FILLER, "region"]) == {"CA1", "APN"}
    assert int(filled.truth["passes_default_filter"].sum()) == len(units) - 7
    movie, flashes = filled.presentations["natural_movie_one"], filled.presentations["flashes"]
    assert len(movie) == 300 and len(flashes) == 5
    # the movie's clip of 100 frames shown three times, each repeat one trial as AllenSDK's
    # frame numbering makes it
    np.testing.assert_array_equal(movie["frame"], np.tile(np.arange(100.0), 3))
    repeats = movie_repeats(movie.sort_values("start_time"))
    assert len(repeats) == 3 and list(repeats["n_frames"]) == [100, 100, 100]
    np.testing.assert_allclose(np.diff(flashes["start_time"]), 2.0)
    np.testing.assert_allclose(flashes["stop_time"] - flashes["start_time"], 0.25)
    # laid out after the pieces' blocks, in order, and the session ends after the last one
    pieces_end = max(group.attrs["block_stop"] for group in filled.truth_groups.values())
    assert movie["start_time"].min() > pieces_end
    assert flashes["start_time"].min() > movie["stop_time"].max()
    duration = filled.truth.attrs["session_duration_s"]
    assert duration >= flashes["stop_time"].max()
    # filler units fire the background only, at its rate over the whole session
    filler = (units["piece"] == FILLER).to_numpy()
    n = np.diff(filled.spike_index, prepend=0)[filler]
    assert abs(n.mean() / duration - 4.0) < 4 * np.sqrt(4.0 / duration / filler.sum())


def test_spike_chunks_are_slices_of_the_whole(filled):
    trains = filled.trains
    whole = filled.spike_times
    assert whole.size == trains.n_spikes == filled.spike_index[-1]
    for k in range(len(trains.index)):  # sorted within each unit, inside the session
        unit = whole[(trains.index[k - 1] if k else 0) : trains.index[k]]
        assert np.all(np.diff(unit) >= 0) and unit.min(initial=0) >= 0
    rng = np.random.default_rng(1)
    for a, b in np.sort(rng.integers(0, whole.size, (20, 2)), axis=1):
        np.testing.assert_array_equal(trains.chunk(a, b), whole[a:b])
    # the writer's iterator, in many small buffers, gives the same flat arrays
    for amplitudes in (False, True):
        iterator = _streamed(trains, amplitudes, chunk=53)
        out = np.empty(trains.n_spikes)
        for chunk in iterator:
            out[chunk.selection] = chunk.data
        reference = trains.chunk(0, trains.n_spikes, amplitudes)
        np.testing.assert_array_equal(out, reference)


def test_reader_on_the_streamed_file_equals_a_full_read(filled, tmp_path):
    """The NWB file holds the streamed spikes; the block reader returns exactly the kept units'
    spikes that reading every spike and filtering gives."""
    path = write_nwb(filled, tmp_path / "session.nwb")
    with h5py.File(path, "r") as handle:
        np.testing.assert_array_equal(handle["units/spike_times"][:], filled.spike_times)
        np.testing.assert_array_equal(handle["units/spike_times_index"][:], filled.spike_index)
    session = read_session(path, FILTER)
    keep = filled.truth["passes_default_filter"].values
    expected, expected_index = select_units(filled.spike_times, filled.spike_index, keep)
    assert len(session.units) == int(keep.sum())
    # the same spikes, unit by unit (the reader gives the units in AllenSDK's order)
    trains = dict(
        zip(filled.units.index[keep], np.split(expected, expected_index[:-1]), strict=True)
    )
    for position, unit in enumerate(session.units.index):
        np.testing.assert_array_equal(session.unit_spike_times(position), trains[unit])
    assert session.spike_times.size == expected.size


def test_each_input_is_hashed_once(tmp_path, monkeypatch):
    path = tmp_path / "input.bin"
    path.write_bytes(b"x" * 1000)
    opened = []
    real_open = open

    def counting_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(netcdf, "open", counting_open, raising=False)
    first = [netcdf.describe_inputs([path]) for _ in range(3)]
    assert opened == [str(path)] and first[0] == first[1] == first[2]
    path.write_bytes(b"y" * 1001)  # a changed file is hashed again
    assert netcdf.file_sha256(path) != first[0][0]["sha256"]
    assert len(opened) == 2


def test_counts_widen_where_a_bin_overflows_the_type_asked_for():
    times = np.concatenate([np.full(40_000, 0.5), [1.5, 2.5]])
    index = np.array([40_000, 40_002])
    counts = bin_spikes(times, index, 0.0, 1.0, 3, dtype=np.int16)
    assert counts.dtype == np.int32
    np.testing.assert_array_equal(counts, [[40_000, 0, 0], [0, 1, 1]])
    small = bin_spikes(times[40_000:], np.array([2]), 0.0, 1.0, 3, dtype=np.int16)
    assert small.dtype == np.int16
    aligned = align_spikes(times, index, np.array([0.0, 1.0]), (0.0, 1.0), 1.0, dtype=np.int16)
    assert aligned.dtype == np.int32
    np.testing.assert_array_equal(aligned[:, :, 0], [[40_000, 0], [0, 1]])


def test_real_size_preset_is_as_large_as_a_real_session():
    """The preset's sizes, composed without writing (spike times are drawn only when written)."""
    config = load_config([REPO / "config" / name for name in ("config.yaml", PRESET)])
    session = simulate(config["datasets"]["allen_real"]["simulate"])
    assert len(session.units) == 2700
    assert int(session.truth["passes_default_filter"].sum()) == 900
    assert set(session.units["probe"]) == {f"probe{c}" for c in "ABCDEF"}
    assert 1.2e8 < session.trains.n_spikes < 1.45e8
    assert 9000 < session.truth.attrs["session_duration_s"] < 10_500
    rows = {name: len(table) for name, table in session.presentations.items()}
    assert rows["natural_movie_three"] == 36_000 and rows["natural_movie_one"] == 9_000
    assert rows["drifting_gratings"] == 630 and rows["flashes"] == 150
    assert rows["natural_scenes"] == 5_950 and rows["static_gratings"] == 6_000


@pytest.mark.slow
def test_session_benchmark_runs_at_a_tiny_size(tmp_path):
    """benchmarks/allen_session.py end to end on the preset scaled down: every stage is run
    through the CLI and reported with its time, memory and problem size."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "allen_session.py"),
            "--sizes",
            "0.02",
            "--workdir",
            str(tmp_path),
            "--quick",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for step in ("simulate", "ingest", "geometry", "latents", "bicluster", "mds"):
        rows = [line for line in lines if line.split()[:2] == ["0.02", step]]
        assert len(rows) == 1, result.stdout
    ok = [line.split()[1] for line in lines if line.split()[:3:2] == ["0.02", "ok"]]
    assert len(ok) == 6, result.stdout
