"""Dag et al. 2023 files with dropped frames (gcamp/idx_splits), behaviour in ingest, NWB and
homogenize, and the behaviour the simulator plants."""

import json

import h5py
import numpy as np
import pytest
from conftest import run_cli

from neurodag.config import stage_defaults
from neurodag.errors import InputError
from neurodag.homogenize.calcium import (
    homogenize_celegans,
    homogenize_recording,
    resample,
    smooth,
)
from neurodag.io.celegans import recording_dataset
from neurodag.io.celegans_nwb import (
    CalciumRecording,
    align_to_frames,
    read_celegans_nwb,
    write_celegans_nwb,
)
from neurodag.io.dag2023 import read_dag2023, trace_frames
from neurodag.io.formats import read, recording_files
from neurodag.io.netcdf import write_dataset

FRAME_S = 0.6


def _events_of(vec):
    """Reversal events as the lab writes them: the frame before the run switches on (1-based)."""
    edges = np.diff(np.concatenate([[0], vec, [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return np.array([np.maximum(starts, 1), stops])  # 0-based first -> 1-based previous frame


def dag_file(path, n_timestamps=300, splits=((1,), (300,)), seed=0, **replace):
    """A worm in the lab's HDF5 layout; ``replace`` overrides datasets (None deletes one)."""
    rng = np.random.default_rng(seed)
    splits = np.asarray(splits, dtype=np.int64)
    n = int((splits[1] - splits[0] + 1).sum())
    timestamps = 1000.0 + np.arange(n_timestamps) * FRAME_S + rng.uniform(0, 0.01, n_timestamps)
    vec = np.zeros(n, dtype=np.int64)
    for a in rng.choice(n - 10, 5, replace=False):
        vec[a + 1 : a + 1 + rng.integers(2, 6)] = 1
    data = {
        "gcamp/trace_array_original": rng.normal(size=(n, 4)).cumsum(axis=0),
        "timing/timestamp_confocal": timestamps,
        "gcamp/idx_splits": splits,
        "behavior/velocity": rng.normal(0.05, 0.02, n),
        "behavior/head_angle": rng.normal(0, 0.5, n),
        "behavior/angular_velocity": rng.normal(0, 0.1, n),
        "behavior/pumping": np.full(n, np.nan),
        "behavior/worm_curvature": rng.uniform(0.2, 1.2, n),
        "behavior/reversal_vec": vec,
        "behavior/reversal_events": _events_of(vec),
        "behavior/nose_curling": rng.uniform(0.1, 1.0, n),
    }
    data.update(replace)
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            if value is not None:
                f[key] = value
    return path, data


def _spec(folder):
    return {"kind": "celegans", "format": "dag2023-h5", "path": str(folder)}


def _ingest(path, parameters=None):
    spec = _spec(path.parent)
    name = path.name[: -len("-data.h5")]
    params = {**stage_defaults("ingest")["celegans"], **(parameters or {})}
    return read(spec, name, recording_files(spec, name), params)


# ------------------------------------------------------------------------ idx_splits, times


def test_trace_frames_take_their_confocal_timestamps_and_gaps_stay_gaps(tmp_path):
    splits = ((1, 101, 201, 251), (80, 200, 240, 300))  # 101 follows 80 after a gap; 201 after 200
    path, data = dag_file(tmp_path / "2024-01-01-01-data.h5", 320, splits)
    ds = _ingest(path)
    frames = np.concatenate([np.arange(0, 80), np.arange(100, 240), np.arange(250, 300)])
    ts = data["timing/timestamp_confocal"]
    np.testing.assert_allclose(ds["time"].values, ts[frames] - ts[0])
    np.testing.assert_allclose(ds["timestamp_start"].values, [ts[0]])
    # ranges 2 and 3 are back to back: one segment; the skipped volumes start new ones
    expected = np.repeat([0, 1, 2], [80, 140, 50])
    np.testing.assert_array_equal(ds["segment"].values[0], expected)
    assert ds.sizes["time"] == data["gcamp/trace_array_original"].shape[0]


def test_one_range_per_frame(tmp_path):
    n = 120
    every = (np.arange(1, n + 1), np.arange(1, n + 1))
    path, data = dag_file(tmp_path / "2024-01-01-01-data.h5", n, every)
    ds = _ingest(path)
    ts = data["timing/timestamp_confocal"]
    np.testing.assert_allclose(ds["time"].values, ts - ts[0])
    assert (ds["segment"].values == 0).all()
    # every other volume: each frame is its own segment
    odd = (np.arange(1, 2 * n, 2), np.arange(1, 2 * n, 2))
    path, data = dag_file(tmp_path / "2024-01-01-02-data.h5", 2 * n, odd)
    ds = _ingest(path)
    ts = data["timing/timestamp_confocal"]
    np.testing.assert_allclose(ds["time"].values, ts[::2] - ts[0])
    np.testing.assert_array_equal(ds["segment"].values[0], np.arange(n))


@pytest.mark.parametrize(
    ("splits", "n_timestamps", "message"),
    [
        (((1, 101), (80, 200)), 300, "the ranges cover 180 frames but .* has 300"),
        (((1, 101), (150, 330)), 320, "range 2 \\[101; 330\\] runs past the 320"),
        (((1, 101), (150, 250)), 300, "range 2 \\[101; 250\\] overlaps or precedes range 1"),
        (((50, 1), (40, 10)), 300, "range 1 \\[50; 40\\]: start after stop"),
        (((1, 2, 3),), 300, "expected a 2 x n array"),
    ],
)
def test_bad_idx_splits_name_the_file_and_field(tmp_path, splits, n_timestamps, message):
    path, _ = dag_file(tmp_path / "2024-01-01-01-data.h5", n_timestamps)
    with h5py.File(path, "a") as f:
        del f["gcamp/idx_splits"]
        f["gcamp/idx_splits"] = np.asarray(splits)
    with pytest.raises(InputError, match=f"2024-01-01-01-data.h5: gcamp/idx_splits: {message}"):
        read_dag2023(path)


def test_trace_frames_hypothesis_free_consistency():
    volume, segment = trace_frames(np.array([[3, 10], [5, 12]]), 6, 12, "x.h5")
    np.testing.assert_array_equal(volume, [2, 3, 4, 9, 10, 11])
    np.testing.assert_array_equal(segment, [0, 0, 0, 1, 1, 1])


# --------------------------------------------------------------------------------- behaviour


def test_behaviour_is_read_with_units_and_reversals_checked(tmp_path):
    path, data = dag_file(tmp_path / "2024-01-01-01-data.h5")
    ds = _ingest(path)
    behaviour = ds["behavior"]
    assert behaviour.dims == ("worm", "time", "variable")
    assert list(ds["variable"].values) == [
        "velocity", "head_angle", "angular_velocity", "pumping", "worm_curvature", "reversal",
    ]  # fmt: skip
    units = json.loads(behaviour.attrs["units"])
    assert units["velocity"] == "mm/s" and units["reversal"] == "1"
    np.testing.assert_array_equal(
        behaviour.sel(variable="velocity").values[0], data["behavior/velocity"]
    )
    np.testing.assert_array_equal(
        behaviour.sel(variable="reversal").values[0], data["behavior/reversal_vec"]
    )
    assert np.isnan(behaviour.sel(variable="pumping").values).all()
    # a variable named in config is read even if not a default one
    ds = _ingest(path, {"behavior": ["nose_curling", "reversal"]})
    assert list(ds["variable"].values) == ["nose_curling", "reversal"]


def test_reversal_events_alone_give_the_series(tmp_path):
    events = np.array([[3, 20], [5, 22]])
    replace = {"behavior/reversal_vec": None, "behavior/reversal_events": events}
    path, _ = dag_file(tmp_path / "2024-01-01-01-data.h5", **replace)
    reversal = _ingest(path)["behavior"].sel(variable="reversal").values[0]
    # the lab's events start on the last forward frame: frames 4-5 and 21-22 (1-based)
    assert np.flatnonzero(reversal).tolist() == [3, 4, 20, 21]


@pytest.mark.parametrize(
    ("replace", "field", "message"),
    [
        (
            {"behavior/velocity": np.zeros(299)},
            "behavior/velocity",
            "shape \\(299,\\): expected one value per",
        ),
        (
            {"behavior/reversal_events": np.array([[10, 40], [8, 45]])},
            "behavior/reversal_events",
            "event 1 starts \\(10\\) after its stop \\(8\\)",
        ),
        (
            {"behavior/reversal_events": np.array([[10, 290], [12, 301]])},
            "behavior/reversal_events",
            "event 2 \\[290; 301\\] outside the frames 1..300",
        ),
        (
            {"behavior/reversal_events": np.array([[10], [14]])},
            "behavior/reversal_events",
            "event 1 \\[10; 14\\] disagrees with behavior/reversal_vec",
        ),
        (
            {"behavior/reversal_events": np.zeros((2, 0), dtype=np.int64)},
            "behavior/reversal_events",
            "behavior/reversal_vec is 1 on frame \\d+, which no reversal event holds",
        ),
        (
            {"behavior/reversal_vec": np.full(300, 2)},
            "behavior/reversal_vec",
            "values other than 0 and 1",
        ),
    ],
)
def test_bad_behaviour_names_the_file_and_field(tmp_path, replace, field, message):
    path, _ = dag_file(tmp_path / "2024-01-01-01-data.h5", **replace)
    with pytest.raises(InputError, match=f"2024-01-01-01-data.h5: {field}: {message}"):
        _ingest(path)


def test_behaviour_named_in_config_that_the_file_lacks(tmp_path):
    path, _ = dag_file(tmp_path / "2024-01-01-01-data.h5", **{"behavior/head_angle": None})
    _ingest(path)  # the default reads what is there
    with pytest.raises(InputError, match="data.h5: behavior/head_angle: missing, but stages"):
        _ingest(path, {"behavior": ["velocity", "head_angle"]})


def test_cli_bad_behaviour_exits_2_and_writes_nothing(tmp_path):
    path, _ = dag_file(tmp_path / "2024-01-01-01-data.h5", **{"behavior/velocity": np.zeros(12)})
    out = tmp_path / "out.nc"
    spec = json.dumps(_spec(tmp_path))
    result = run_cli("ingest", "--spec", spec, "--recording", "2024-01-01-01", "-o", str(out))
    assert result.returncode == 2
    assert "2024-01-01-01-data.h5: behavior/velocity" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.nc*"))


# ---------------------------------------------------------------- homogenize across a gap


def test_homogenize_never_interpolates_across_a_gap(tmp_path):
    splits = ((1, 151), (100, 300))  # volumes 101..150 (30 s) were not traced
    path, data = dag_file(tmp_path / "2024-01-01-01-data.h5", 300, splits)
    ingest = write_dataset(_ingest(path), tmp_path / "w.nc", stage="ingest")
    params = {**stage_defaults("homogenize")["celegans"], "normalise": "none"}
    out = homogenize_recording(ingest, params)
    grid = out["time"]
    ts = data["timing/timestamp_confocal"] - data["timing/timestamp_confocal"][0]
    end_first, start_second = ts[99], ts[150]
    in_gap = (grid > end_first + 1e-9) & (grid < start_second - 1e-9)
    assert in_gap.sum() > 80
    traces = out["unlabeled_activity"]
    assert np.isnan(traces[in_gap]).all() and np.isfinite(traces[~in_gap]).all()
    # the first segment is exactly the segment homogenized on its own
    x = data["gcamp/trace_array_original"][:100]
    alone = resample(ts[:100], smooth(x, params["smooth"], out["original_frame_s"], params), 1 / 3)
    np.testing.assert_allclose(traces[: alone[1].shape[0]], alone[1], rtol=1e-5)
    # the second segment's smoothing restarts at its first frame
    first_after = np.flatnonzero(grid >= start_second - 1e-9)[0]
    behaviour = out["behavior"]["values"]
    assert np.isnan(behaviour[in_gap]).all()
    reversal = behaviour[:, out["behavior"]["variable"].index("reversal")]
    finite = reversal[np.isfinite(reversal)]
    assert finite.min() >= 0 and finite.max() <= 1 and finite.max() > 0.5  # not z-scored
    assert np.isfinite(traces[first_after]).all()
    # z-scoring skips the gap: each trace has mean 0 and sd 1 over its valid steps
    z = homogenize_recording(ingest, stage_defaults("homogenize")["celegans"])
    values = z["unlabeled_activity"][~in_gap]
    np.testing.assert_allclose(values.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(values.std(axis=0), 1, atol=1e-4)
    causal = homogenize_recording(ingest, {**params, "normalise": "causal"})
    assert np.isnan(causal["unlabeled_activity"][in_gap]).all()
    assert np.isfinite(causal["unlabeled_activity"][~in_gap]).all()


def test_homogenized_behaviour_has_the_union_of_variables(tmp_path):
    files = []
    for k, behaviour in enumerate(({"velocity": 0.1}, {"velocity": 0.2, "reversal": 1.0}, {})):
        t = 100.0 + np.arange(0, 90, 0.5)
        rec = CalciumRecording(
            traces=np.random.default_rng(k).normal(size=(t.size, 2)).cumsum(axis=0),
            timestamps=t,
            labels=["AVAL", ""],
            behaviour={name: np.full(t.size, v) for name, v in behaviour.items()},
            behaviour_units={"velocity": "mm/s", "reversal": "1"},
        )
        ds = recording_dataset(rec, f"w{k}", tmp_path / f"w{k}.nwb")
        files.append(write_dataset(ds, tmp_path / f"w{k}.nc", stage="ingest"))
    out = homogenize_celegans({"kind": "celegans"}, {}, files, threads=1)
    assert out["behavior"].dims == ("worm", "time", "variable")
    assert list(out["variable"].values) == ["velocity", "reversal"]
    assert json.loads(out["behavior"].attrs["units"]) == {"velocity": "mm/s", "reversal": "1"}
    n = int(out["valid_length"].values[1])
    np.testing.assert_allclose(out["behavior"].values[1, :n], [[0.2, 1.0]] * n)
    np.testing.assert_allclose(out["behavior"].values[0, :n, 0], 0.1)
    assert np.isnan(out["behavior"].values[0, :, 1]).all()
    assert np.isnan(out["behavior"].values[2]).all()


# ------------------------------------------------------------------------------------ NWB


def test_nwb_behaviour_round_trip_and_missing_variable(tmp_path):
    import datetime as dt

    t = np.arange(200) * 0.5
    rec = CalciumRecording(
        traces=np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32),
        timestamps=t,
        labels=["AVAL", "", "AVAR"],
        identifier="w",
        behaviour={"velocity": np.sin(t), "reversal": (np.cos(t) > 0.8).astype(float)},
        behaviour_units={"velocity": "mm/s", "reversal": "1"},
    )
    path = write_celegans_nwb(
        rec, tmp_path / "w.nwb", session_start=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )
    read = read_celegans_nwb(path)
    assert set(read.behaviour) == {"velocity", "reversal"}
    np.testing.assert_array_equal(read.behaviour["velocity"], np.sin(t))
    assert read.behaviour_units == {"velocity": "mm/s", "reversal": "1"}
    with pytest.raises(InputError, match="w.nwb: processing/behavior/pumping: missing"):
        read_celegans_nwb(path, behaviour=["velocity", "pumping"])
    assert list(read_celegans_nwb(path, behaviour=["reversal"]).behaviour) == ["reversal"]


def test_behaviour_on_another_clock_is_averaged_causally_onto_the_frames():
    frames = np.array([1.0, 2.0, 3.0, 4.0])
    ts = np.arange(0.0, 3.55, 0.1)  # 10 Hz, stops before the last frame
    values = ts.copy()
    out = align_to_frames(ts, values, frames)
    # frame 1 averages (0, 1], frame 2 (1, 2], frame 3 (2, 3]; frame 4 is past the series
    np.testing.assert_allclose(out[:3], [0.55, 1.55, 2.55], atol=1e-9)
    assert np.isnan(out[3])
    # a sparse series: frames without a sample get the interpolation
    out = align_to_frames(np.array([0.0, 10.0]), np.array([0.0, 10.0]), frames)
    np.testing.assert_allclose(out, frames)


# ------------------------------------------------------------------------ the real Dag worms


def test_shared_dag_worms_keep_their_frames_and_read_behaviour(shared_data):
    folder = shared_data / "celegans" / "dag2023"
    for path in sorted(folder.glob("*-data.h5")):
        rec, _ = read_dag2023(path)
        with h5py.File(path, "r") as f:
            np.testing.assert_array_equal(rec.timestamps, f["timing/timestamp_confocal"][:])
            np.testing.assert_array_equal(rec.behaviour["reversal"], f["behavior/reversal_vec"][:])
            np.testing.assert_array_equal(rec.behaviour["velocity"], f["behavior/velocity"][:])
        assert (rec.segment == 0).all()
        assert set(rec.behaviour) == {
            "velocity", "head_angle", "angular_velocity", "pumping", "worm_curvature", "reversal",
        }  # fmt: skip


# ------------------------------------------------------------------- inspect and the figure


def test_inspect_and_figure_show_behaviour_beside_activity(tmp_path):
    from neurodag.homogenize.figures import plot_homogenized
    from neurodag.inspect import describe, quick_look

    splits = ((1, 151), (100, 300))
    path, _ = dag_file(tmp_path / "2024-01-01-01-data.h5", 300, splits)
    ingest = write_dataset(_ingest(path), tmp_path / "w.nc", stage="ingest")
    out = homogenize_celegans({"kind": "celegans"}, {}, [ingest], threads=1)
    text = describe(write_dataset(out, tmp_path / "h.nc", stage="homogenize"))
    assert "behaviour (behavior(worm, time, variable)):" in text
    assert "velocity" in text and "[mm/s]" in text and "pumping" in text
    figure = plot_homogenized(out, tmp_path / "h.png", title="gap")
    look = quick_look(tmp_path / "h.nc", tmp_path / "look.png")
    assert figure.stat().st_size > 10_000 and look.stat().st_size > 10_000
