"""Allen stimulus tables read exactly as AllenSDK's ``EcephysSession`` reports them.

Sessions written by the simulator are read two ways: by the ingest, and by an independent
re-statement of AllenSDK v2.x's rules in this file (h5py and pandas on the file, nothing from
``neurodag.io``): ``NwbApi.get_stimulus_presentations`` (stack every ``*_presentations`` table,
sort by start time, number the rows), ``EcephysSession._build_stimulus_presentations`` (the
``stimulus_condition_id`` of every distinct parameter tuple),
``_mask_invalid_stimulus_presentations`` (closed overlap with ``invalid_times`` tagged
``stimulus``), ``get_stimulus_epochs`` (runs of one ``stimulus_block``, NaN-aware) and the probe
masks of ``get_lfp`` / ``_warn_invalid_spike_intervals``.
"""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_allen_ingest import _fails  # the CLI run: exit 2, one message, nothing written

from neurodag.errors import InputError
from neurodag.ingest_allen import ingest_session
from neurodag.io.allen_nwb import DEFAULT_UNIT_FILTER
from neurodag.simulate.allen import compose_session, write_nwb
from neurodag.simulate.demo_pieces import spontaneous_states, static_gratings

SPEC = {"kind": "allen", "format": "allen-nwb", "path": "x"}
WINDOW = {"window_s": [0.0, 0.25], "bin_size_s": 0.025}
PARAMS = {
    "bin_size_s": 0.05,
    "regions": None,
    "unit_filter": dict(DEFAULT_UNIT_FILTER),
    "responses": {"static_gratings": WINDOW, "drifting_gratings": WINDOW},
    "invalid_presentations": "drop",
}


def renamed(piece, name: str):
    """A piece under another stimulus name, with its own neuron ids."""
    ids = [f"{name}_{n}" for n in piece["neuron"].values]
    return piece.assign_coords(neuron=ids).assign_attrs(stimulus_name=name)


def stimulus_pieces() -> list:
    """Gratings, spontaneous (cut in three by the session: after it, the next two pieces),
    gratings, scenes with a blank, flashes."""
    return [
        renamed(static_gratings(seed=2, repeats=3), "drifting_gratings"),
        spontaneous_states(seed=1, n_time=200),
        static_gratings(seed=3, repeats=3),
        renamed(static_gratings(seed=4, repeats=2, n_blank=1), "natural_scenes"),
        renamed(static_gratings(seed=5, repeats=1, n_blank=0, n_neurons=3), "flashes"),
    ]


@pytest.fixture(scope="module")
def session():
    """The stimulus pieces, and a spontaneous sweep after them (its middle tagged
    ``stimulus``)."""
    return compose_session(stimulus_pieces(), seed=6, n_filtered_units=2)


# -- AllenSDK's rules, restated on the raw file -------------------------------------------------


def _column(group, name: str):
    data = group[name]
    if h5py.check_string_dtype(data.dtype) is not None:
        return np.asarray(data.asstr()[()], dtype=object)
    return data[()]


def _ragged(group, name: str) -> list[list[str]]:
    values, ends = _column(group, name), group[f"{name}_index"][()]
    return [list(values[a:b]) for a, b in zip(np.r_[0, ends[:-1]], ends, strict=True)]


def sdk_presentations(path) -> pd.DataFrame:
    """``get_stimulus_presentations`` then ``_build_stimulus_presentations`` (conditions) then
    ``_mask_invalid_stimulus_presentations``, on the file as h5py reads it."""
    ignore = {"tags", "tags_index", "timeseries", "timeseries_index", "id"}
    with h5py.File(path, "r") as f:
        frames = []
        for name, group in f["intervals"].items():
            if name.endswith("_presentations"):
                columns = {c: _column(group, c) for c in group if c not in ignore}
                frames.append(pd.DataFrame(columns).replace({"N/A": ""}))
        group = f.get("intervals/invalid_times")
        invalid = pd.DataFrame(
            {
                "start_time": group["start_time"][()] if group else [],
                "stop_time": group["stop_time"][()] if group else [],
                "tags": _ragged(group, "tags") if group else [],
            }
        )
    table = pd.concat(frames, sort=False).sort_values("start_time", kind="mergesort")
    table = table.reset_index(drop=True)
    for name in table.columns:  # mixed text and missing: all text
        kinds = set(table[name].map(type))
        if len(kinds) > 1 and str in kinds:
            table[name] = table[name].fillna("").astype(str)
    table = table.drop(columns=["stimulus_index"], errors="ignore")
    table = table.replace("", "null").astype(object).fillna("null")
    parameters = table.drop(columns=["start_time", "stop_time", "stimulus_block"])
    seen: dict = {}
    table["stimulus_condition_id"] = [
        seen.setdefault(row, len(seen)) for row in parameters.itertuples(index=False)
    ]
    bad = invalid[np.array([any(t == "stimulus" for t in tags) for tags in invalid["tags"]], bool)]
    for k in range(len(table)):
        a, b = float(table.at[k, "start_time"]), float(table.at[k, "stop_time"])
        if any(
            max(a, lo) <= min(b, hi) for lo, hi in zip(bad.start_time, bad.stop_time, strict=True)
        ):
            table.loc[k, :] = np.nan
            table.loc[k, ["stimulus_name", "start_time", "stop_time"]] = [
                "invalid_presentation",
                a,
                b,
            ]
    return table, invalid


def _distinct(left, right) -> bool:
    """AllenSDK ``is_distinct_from``."""
    if type(left) is not type(right):
        return True
    if pd.isna(left) and pd.isna(right):
        return False
    return left != right


def sdk_epochs(table: pd.DataFrame) -> pd.DataFrame:
    """``get_stimulus_epochs`` (``nan_intervals`` over ``stimulus_block``)."""
    blocks = table["stimulus_block"].to_numpy(dtype=object)
    cuts = [0] + [k for k in range(1, len(blocks)) if _distinct(blocks[k], blocks[k - 1])]
    cuts.append(len(blocks))
    rows = [
        (
            table["stimulus_name"].iloc[a],
            table["start_time"].iloc[a],
            table["stop_time"].iloc[b - 1],
        )
        for a, b in zip(cuts[:-1], cuts[1:], strict=True)
    ]
    return pd.DataFrame(rows, columns=["stimulus", "start", "stop"])


def sdk_valid(invalid: pd.DataFrame, probe: str, time: np.ndarray, w: float) -> np.ndarray:
    """A probe's spikes are invalid in intervals tagged all_probes or with its name."""
    valid = np.ones(len(time), dtype=bool)
    for lo, hi, tags in zip(invalid.start_time, invalid.stop_time, invalid.tags, strict=True):
        if "all_probes" in tags or probe in tags:
            valid &= ~((time - w / 2 <= hi) & (time + w / 2 > lo))
    return valid


# -- the ingest against them ----------------------------------------------------------------------


def write(session, tmp_path, invalid=None):
    if invalid is not None:
        session = dataclasses.replace(session, invalid_times=invalid)
    return write_nwb(session, tmp_path / "session.nwb"), session


def check_against_sdk(path, params=PARAMS):
    outputs = ingest_session(path, SPEC, params)
    table, invalid = sdk_presentations(path)
    counts = outputs["counts"]
    # epochs and the epoch label of every bin
    epochs = sdk_epochs(table)
    np.testing.assert_array_equal(counts["block_stimulus"].values, epochs["stimulus"])
    np.testing.assert_allclose(counts["block_start"].values, epochs["start"].astype(float))
    np.testing.assert_allclose(counts["block_stop"].values, epochs["stop"].astype(float))
    time = counts["time"].values
    label = np.full(len(time), "none", dtype=object)
    for _, epoch in epochs.iterrows():
        label[(time >= epoch["start"]) & (time < epoch["stop"])] = epoch["stimulus"]
    np.testing.assert_array_equal(counts["epoch"].values, label.astype(str))
    # probe masks
    for probe in counts["probe_name"].values:
        expected = sdk_valid(invalid, str(probe), time, counts.attrs["bin_size_s"])
        np.testing.assert_array_equal(counts["valid"].sel(probe_name=probe).values, expected)
    # presentation ids, conditions and invalid presentations of every aligned stimulus
    for stimulus in params["responses"]:
        responses = outputs[stimulus]
        mine = table[table["stimulus_name"] == stimulus]
        masked = table[table["stimulus_name"] == "invalid_presentation"]
        # AllenSDK renames a masked presentation: its start time tells its table
        of_stimulus = masked.index[
            np.isin(masked["start_time"].astype(float), _starts(path, stimulus))
        ]
        keep = params["invalid_presentations"] == "keep"
        expected = np.sort(np.r_[mine.index, of_stimulus] if keep else mine.index.to_numpy())
        np.testing.assert_array_equal(responses["trial"].values, expected)
        valid_trials = np.isin(responses["trial"].values, mine.index)
        np.testing.assert_array_equal(
            responses["condition"].values[valid_trials],
            mine["stimulus_condition_id"].astype(int).to_numpy(),
        )
        if keep:
            np.testing.assert_array_equal(responses["invalid_presentation"].values, ~valid_trials)
    return outputs, table, invalid


def _starts(path, stimulus) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[f"intervals/{stimulus}_presentations/start_time"][()]


def test_simulated_file_has_the_allen_layout(session, tmp_path):
    path, _ = write(session, tmp_path)
    with h5py.File(path, "r") as f:
        tables = {k: g for k, g in f["intervals"].items() if k.endswith("_presentations")}
        for group in tables.values():  # per-table ids, as AllenSDK writes them
            np.testing.assert_array_equal(group["id"][()], np.arange(group["id"].shape[0]))
            assert group["timeseries"].dtype.kind == "V"  # compound TimeSeries references
        spontaneous = tables["spontaneous_presentations"]
        assert "stimulus_block" not in spontaneous and spontaneous["id"].shape[0] == 4
        assert tables["static_gratings_presentations"]["orientation"].dtype.kind == "f"
        assert h5py.check_string_dtype(tables["static_gratings_presentations"]["units"].dtype)
        assert "timestamps" in f["processing/running/running_speed"]
        tags = _ragged(f["intervals/invalid_times"], "tags")
    assert ["EcephysSession", "6", "all_probes"] in tags
    assert {t[0] for t in tags} == {"EcephysSession", "EcephysProbe"}
    assert any(t[2] == "stimulus" for t in tags) and any(t[2] == "optotagging" for t in tags)


def test_default_session_against_allensdk(session, tmp_path):
    path, _ = write(session, tmp_path)
    outputs, table, _ = check_against_sdk(path)
    counts = outputs["counts"]
    # every spontaneous row is its own epoch; the last sweep's stimulus interval masks it
    assert list(counts["block_stimulus"].values) == [
        "drifting_gratings",
        "spontaneous",
        "static_gratings",
        "spontaneous",
        "natural_scenes",
        "spontaneous",
        "flashes",
        "invalid_presentation",
    ]
    # the spontaneous epochs hold the whole planted piece, bin for bin
    planted = session.truth_groups["spontaneous"]
    selected = counts["counts"].isel(time=counts["epoch"].values == "spontaneous")
    np.testing.assert_allclose(selected["time"].values, planted["time"].values)
    got = selected.sel(neuron=planted["neuron"]).values
    np.testing.assert_array_equal(got, planted["planted_counts"].values)
    # and so does the bicluster stage's selection (epochs: [spontaneous]) from counts.nc
    from neurodag.bicluster.stage import select_counts
    from neurodag.io.netcdf import write_dataset

    stored = write_dataset(counts, tmp_path / "counts.nc", stage="ingest", parameters={})
    params = {"regions": ["LGd"], "epochs": ["spontaneous"], "bin_size_s": 0.05, "min_rate_hz": 0}
    seen = select_counts(stored, params)
    np.testing.assert_allclose(seen["time"].values, planted["time"].values)
    np.testing.assert_array_equal(
        seen.sel(neuron=planted["neuron"]).values, planted["planted_counts"].values
    )
    assert (table["stimulus_name"] == "invalid_presentation").sum() == 1
    # optotagging (inside the first block) and stimulus intervals leave the spikes valid
    probes = counts["probe_name"].values
    first = (counts["time"] > 1.0) & (counts["time"] < counts["block_stop"].values[0])
    assert counts["valid"].sel(probe_name=probes[1:]).isel(time=first.values).all()
    assert not counts["valid"].sel(probe_name=probes[0]).isel(time=first.values).all()


@st.composite
def invalid_intervals(draw, probes, duration):
    n = draw(st.integers(0, 5))
    rows = []
    for _ in range(n):
        start = draw(st.floats(0, duration - 0.1))
        length = draw(st.sampled_from([0.0, 0.01, 0.25, 0.6, 3.0]))
        scope = draw(st.sampled_from(["stimulus", "all_probes", "optotagging", *probes]))
        kind = "EcephysProbe" if scope in probes else "EcephysSession"
        rows.append((start, start + length, [kind, "1", scope]))
    return pd.DataFrame(rows, columns=["start_time", "stop_time", "tags"])


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), keep=st.booleans())
def test_any_invalid_times_against_allensdk(session, tmp_path_factory, data, keep):
    probes = sorted(set(session.units["probe"]))
    duration = float(session.truth.attrs["session_duration_s"])
    invalid = data.draw(invalid_intervals(probes, duration))
    path, _ = write(session, tmp_path_factory.mktemp("inv"), invalid)
    params = {**PARAMS, "invalid_presentations": "keep" if keep else "drop"}
    try:
        check_against_sdk(path, params)
    except InputError as error:  # every presentation of an aligned stimulus invalid
        assert "every presentation is invalid" in str(error) and not keep


def test_movies_are_aligned_per_repeat(session, tmp_path):
    """natural_movie_one: one row per frame in the file, one trial per repeat."""
    movie = pd.DataFrame(
        {
            "start_time": 200.0 + np.arange(3 * 30) / 30.0,
            "stop_time": 200.0 + (np.arange(3 * 30) + 1) / 30.0,
            "stimulus_name": "natural_movie_one",
            "stimulus_block": 9.0,
            "frame": np.tile(np.arange(30), 3).astype(float),
        }
    )
    movie.index.name = "id"
    session = dataclasses.replace(
        session, presentations={**session.presentations, "natural_movie_one": movie}
    )
    invalid = pd.concat(
        [
            session.invalid_times,
            pd.DataFrame(
                {"start_time": [201.5], "stop_time": [201.6], "tags": [["s", "1", "stimulus"]]}
            ),
        ],
        ignore_index=True,
    )
    path, _ = write(session, tmp_path, invalid)
    window = {"window_s": [0.0, 1.0], "bin_size_s": 0.1}
    for policy, n_trials in (("drop", 2), ("keep", 3)):
        params = {
            **PARAMS,
            "responses": {"natural_movie_one": window},
            "invalid_presentations": policy,
        }
        responses = ingest_session(path, SPEC, params)["natural_movie_one"]
        assert responses.sizes["trial"] == n_trials
        table, _ = sdk_presentations(path)
        first = table.index[(table["stimulus_name"] == "natural_movie_one") & (table["frame"] == 0)]
        assert set(responses["trial"].values) <= set(first)  # the id of the repeat's first frame
        assert set(responses["n_frames"].values) == {30}
        assert len(set(responses["condition"].values)) == 1  # every repeat: one condition
        assert set(responses["frame"].values) == {0}  # the condition's rank, for geometry
    np.testing.assert_allclose(responses["start_time"].values, [200.0, 201.0, 202.0])
    np.testing.assert_array_equal(responses["invalid_presentation"].values, [False, True, False])


# -- bad input ------------------------------------------------------------------------------------


def test_start_times_running_backwards(session, tmp_path):
    path, _ = write(session, tmp_path)
    with h5py.File(path, "a") as f:
        start = f["intervals/static_gratings_presentations/start_time"]
        start[3], start[4] = start[4], start[3]
    message = _fails(tmp_path, path, params=PARAMS)
    assert str(path) in message
    assert "intervals/static_gratings_presentations/start_time" in message
    assert "backwards" in message


def test_stimulus_the_file_lacks(session, tmp_path):
    path, _ = write(session, tmp_path)
    params = {**PARAMS, "responses": {"gabors": WINDOW}}
    message = _fails(tmp_path, path, params=params)
    assert str(path) in message and "intervals/gabors_presentations" in message
    for name in ("drifting_gratings", "natural_scenes", "spontaneous", "static_gratings"):
        assert name in message


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.integers(0, 6), st.floats(0.0, 5.0))
def test_movie_repeats_start_where_frames_restart(n_repeats, n_frames, split, pause):
    """Repeats of a movie table: one per restart of the frame numbers, and one more where a
    second block begins (natural_movie_three is shown in two blocks of repeats)."""
    from neurodag.io.allen_stimuli import movie_repeats

    frames = np.tile(np.arange(n_frames), n_repeats)
    block = np.where(np.arange(frames.size) < min(split, n_repeats) * n_frames, 0.0, 1.0)
    start = np.arange(frames.size) / 30.0 + pause * block
    table = pd.DataFrame(
        {
            "start_time": start,
            "stop_time": start + 1 / 30.0,
            "frame": frames,
            "stimulus_block": block,
            "invalid_presentation": np.zeros(frames.size, dtype=bool),
        },
        index=pd.Index(100 + np.arange(frames.size), name="stimulus_presentation_id"),
    )
    repeats = movie_repeats(table)
    if n_frames == 1:  # every row restarts the movie
        assert len(repeats) == frames.size
        return
    assert len(repeats) == n_repeats
    firsts = table.index[frames == 0]
    np.testing.assert_array_equal(repeats.index, firsts)
    np.testing.assert_array_equal(repeats["n_frames"], n_frames)
    np.testing.assert_allclose(repeats["start_time"], table.loc[firsts, "start_time"])
    lasts = table.index[frames == n_frames - 1]
    np.testing.assert_allclose(repeats["stop_time"], table.loc[lasts, "stop_time"])
