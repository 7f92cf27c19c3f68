"""The Allen session composer: generic over planted pieces, seeded, valid NWB, truth.nc layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from conftest import REPO, run_cli

from neurodag.config import load_config
from neurodag.errors import ConfigError, InputError
from neurodag.io.netcdf import open_dataset, provenance
from neurodag.simulate.allen import (
    compose_session,
    load_piece,
    simulate,
    with_images_in,
    write_session,
)
from neurodag.simulate.demo_pieces import spontaneous_states, static_gratings


def region_dim_piece(seed=0):
    """A trial piece shaped like the geometry one: ``region`` is a truth dimension, so the
    neurons' regions sit in ``neuron_region``; ``frame`` is a coordinate on ``trial``."""
    rng = np.random.default_rng(seed)
    regions = ["VISl", "VISal"]
    n_frames, n_trials, n_time = 3, 6, 4
    frame = np.tile(np.arange(n_frames), n_trials // n_frames)
    return xr.Dataset(
        {
            "rate": (("trial", "neuron", "time"), rng.uniform(0, 50, (n_trials, 4, n_time))),
            "image": (("frame", "y", "x"), rng.uniform(0, 255, (n_frames, 2, 2))),
            "true_rdm": (("region", "frame", "frame2"), rng.uniform(size=(2, n_frames, n_frames))),
            "true_code": ("region", ["ring", "line"]),
        },
        coords={
            "trial": np.arange(n_trials),
            "neuron": [f"geo_{i}" for i in range(4)],
            "neuron_region": ("neuron", ["VISl", "VISl", "VISal", "VISal"]),
            "region": regions,
            "frame": ("trial", frame),
            "time": (np.arange(n_time) + 0.5) * 0.01,
        },
        attrs={"stimulus_name": "natural_scenes", "dt_s": 0.01},
    )


@pytest.fixture(scope="module")
def composed():
    pieces = [spontaneous_states(seed=1), region_dim_piece(), static_gratings(seed=2)]
    return pieces, compose_session(pieces, seed=5, n_filtered_units=3)


def test_composer_is_seeded():
    pieces = [spontaneous_states(seed=1), static_gratings(seed=2)]
    a, b = compose_session(pieces, seed=7), compose_session(pieces, seed=7)
    c = compose_session(pieces, seed=8)
    np.testing.assert_array_equal(a.spike_times, b.spike_times)
    assert a.spike_times.size != c.spike_times.size or not np.array_equal(
        a.spike_times, c.spike_times
    )


def test_blocks_in_order_and_on_whole_seconds(composed):
    pieces, session = composed
    starts = [table["start_time"].min() for table in session.presentations.values()]
    assert list(session.presentations) == [p.attrs["stimulus_name"] for p in pieces]
    assert starts == sorted(starts) and all(s == int(s) for s in starts)
    ids = np.concatenate([t.index.to_numpy() for t in session.presentations.values()])
    assert len(set(ids)) == len(ids)  # presentation ids are unique across tables


def test_truth_groups_keep_the_pieces_truth_keyed_by_unit_id(composed):
    pieces, session = composed
    geometry = session.truth_groups["natural_scenes"]
    np.testing.assert_array_equal(geometry["true_rdm"], pieces[1]["true_rdm"])
    assert list(geometry["true_code"].values) == ["ring", "line"]
    pairs = zip(geometry["neuron"].values, geometry["piece_neuron"].values, strict=True)
    for unit_id, original in pairs:
        row = session.units.loc[int(unit_id)]
        assert row["piece_neuron"] == original and row["piece"] == "natural_scenes"
    regions = session.units.loc[geometry["neuron"].values.astype(int), "region"]
    assert list(regions) == list(pieces[1]["neuron_region"].values)
    states = session.truth_groups["spontaneous"]
    block = session.presentations["spontaneous"]
    assert states["time"].min() > block["start_time"].iloc[0]  # session time, bin centres
    assert states["time"].max() < block["stop_time"].iloc[0]
    np.testing.assert_array_equal(states["true_state"], pieces[0]["true_state"])


def test_planted_spikes_lie_in_their_bins(composed):
    _, session = composed
    group = session.truth_groups["natural_scenes"]
    dt = group.attrs["dt_s"]
    planted = group["planted_counts"]
    for unit_id in group["neuron"].values[:2]:
        position = session.units.index.get_loc(int(unit_id))
        start = session.spike_index[position - 1] if position else 0
        spikes = session.spike_times[start : session.spike_index[position]]
        for trial in group["trial"].values:
            onset = float(group["start_time"].sel(trial=trial))
            edges = onset + np.arange(planted.sizes["time"] + 1) * dt
            counts = np.histogram(spikes, edges)[0]
            np.testing.assert_array_equal(counts, planted.sel(trial=trial, neuron=unit_id))


def test_units_failing_the_filter_are_planted(composed):
    _, session = composed
    failing = session.units[session.units["piece"] == "none"]
    assert len(failing) == 3
    assert (failing["quality"] == "noise").sum() == 1
    assert (failing["amplitude_cutoff"] > 0.1).sum() == 1
    assert (failing["presence_ratio"] < 0.95).sum() == 1


def test_piece_errors_name_the_problem():
    with pytest.raises(ConfigError, match="same stimulus table"):
        compose_session([static_gratings(seed=1), static_gratings(seed=2)])
    bad = spontaneous_states()
    bad.attrs.pop("dt_s")
    with pytest.raises(ConfigError, match="dt_s"):
        compose_session([bad])
    with pytest.raises(ConfigError, match="simulate.pieces.nope"):
        load_piece("nope", {}, seed=0)
    with pytest.raises(ConfigError, match="simulate.pieces.demo_states"):
        load_piece("demo_states", {"no_such_option": 1}, seed=0)


@pytest.mark.slow
def test_nwb_passes_nwbinspector_and_truth_file_layout(tmp_path):
    from nwbinspector import Importance, inspect_nwbfile

    session = simulate({"seed": 1, "pieces": ["demo_states", {"demo_gratings": {"repeats": 2}}]})
    nwb, truth = write_session(session, tmp_path, parameters={"seed": 1})
    serious = [
        message
        for message in inspect_nwbfile(nwbfile_path=str(nwb))
        if message.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value
    ]
    assert serious == [], [(m.importance.name, m.check_function_name) for m in serious]
    root = open_dataset(truth)
    assert provenance(root)["stage"] == "simulate"
    assert json.loads(root.attrs["pieces"]) == ["spontaneous", "static_gratings"]
    assert {"piece", "piece_neuron", "passes_default_filter", "region", "probe"} <= set(
        root.variables
    )
    group = open_dataset(truth, group="static_gratings")
    assert {"planted_counts", "start_time", "true_preferred_orientation"} <= set(group.variables)
    with pytest.raises(InputError, match="no such group; the file has spontaneous"):
        open_dataset(truth, group="lorenz_trials")


@pytest.mark.slow
def test_default_config_simulates_and_ingests_under_a_minute(tmp_path):
    """The default `allen` dataset through the CLI, as the rules run it."""
    import time

    config = load_config([REPO / "config" / "config.yaml"])
    # the images the simulator writes beside session.nwb, as the config names them in results/
    entry = with_images_in(config["datasets"]["allen"], tmp_path / "sim")
    images = entry["images"]
    spec = json.dumps(entry)
    stage = json.dumps(config["stages"]["ingest"])
    begin = time.perf_counter()
    result = run_cli("simulate", "allen", "--spec", spec, "-o", str(tmp_path / "sim"))
    assert result.returncode == 0, result.stderr
    result = run_cli(
        "ingest",
        "--recording",
        "session",
        "--spec",
        spec,
        "--params",
        stage,
        "--input",
        str(tmp_path / "sim" / "session.nwb"),
        "-o",
        str(tmp_path / "ingest"),
    )
    assert result.returncode == 0, result.stderr
    # well under a minute on an idle core (about 20 s); the bound leaves room for a busy CI box
    assert time.perf_counter() - begin < 120
    counts = open_dataset(tmp_path / "ingest" / "counts.nc")
    truth = open_dataset(tmp_path / "sim" / "truth.nc")
    assert set(counts["neuron"].values) == set(
        truth["neuron"].values[truth["passes_default_filter"].values]
    )
    for stimulus in config["datasets"]["allen"]["responses"]:
        responses = open_dataset(tmp_path / "ingest" / f"{stimulus}.nc")
        planted = xr.open_dataset(
            tmp_path / "sim" / "truth.nc", group=stimulus, engine="h5netcdf"
        ).load()
        got = responses["responses"].sel(neuron=planted["neuron"], trial=planted["trial"])
        # the default windows are the pieces' trials, at their bin sizes: exact recovery
        got = got.transpose(*planted["planted_counts"].dims)
        np.testing.assert_array_equal(got.values, planted["planted_counts"].values)
        assert "true_" in " ".join(map(str, planted.data_vars))
        for name, variable in planted.variables.items():  # trial variables (frame, condition)
            if variable.dims == ("trial",) and name not in ("trial", "start_time"):
                np.testing.assert_array_equal(responses[name].values, variable.values)
        np.testing.assert_allclose(responses["start_time"].values, planted["start_time"].values)
        if stimulus in images:  # from the folder, not the session file (it has none)
            assert responses["image"].attrs["source"] == images[stimulus]
            shown = set(np.unique(responses["frame"])) - {-1}  # -1: the blank, no image
            assert set(responses["image_frame"].values) == shown


def test_config_pieces_are_a_list_of_names_or_name_options():
    from neurodag.config import validate

    def entry(pieces):
        return {"datasets": {"s": {"kind": "allen", "format": "simulated", "simulate": pieces}}}

    filled = validate(entry({"pieces": ["latents", {"mds": {"repeats": 1}}]}))
    assert filled["datasets"]["s"]["simulate"]["seed"] == 0
    for bad in (["nope"], [{"mds": {}, "latents": {}}], []):
        with pytest.raises(ConfigError, match="datasets.s.simulate.pieces"):
            validate(entry({"pieces": bad}))
    default = validate({"datasets": {"s": {"kind": "allen", "format": "simulated"}}})
    assert default["datasets"]["s"]["simulate"]["pieces"] == ["demo_states", "demo_gratings"]


@pytest.mark.parametrize(
    ("piece", "key"),
    [
        ({"mds": {"types": ["nonsense"]}}, "simulate.pieces.mds: types"),
        ({"bicluster": {"segment_bins": [5, 2]}}, "simulate.pieces.bicluster: segment_bins"),
        ({"geometry": {"regions": ["XX"]}}, "simulate.pieces.geometry: regions"),
        ({"latents": {"n_neurons": -3}}, "simulate.pieces.latents"),
        ({"demo_states": {"no_such_option": 1}}, "no_such_option"),
    ],
)
def test_bad_simulator_options_are_config_errors_without_traceback(tmp_path, piece, key):
    spec = json.dumps({"kind": "allen", "format": "simulated", "simulate": {"pieces": [piece]}})
    out = tmp_path / "sim"
    result = run_cli("simulate", "allen", "--spec", spec, "-o", str(out))
    assert result.returncode == 2, result.stderr
    assert key in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())
