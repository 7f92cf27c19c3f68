"""Generic NWB spiking sessions (kind spikes, format nwb): files in the layouts labs write read
into counts.nc and trial responses that equal histograms of the spikes written, and every bad
input stops with the file and field named, a non-zero exit and no output."""

from __future__ import annotations

import contextlib
import io
import json

import h5py
import numpy as np
import pytest
import xarray as xr
from nwb_layouts import DURATION_S, N_TRIALS, write_session

from neurodag.cli import main
from neurodag.config import validate
from neurodag.errors import InputError
from neurodag.io import formats
from neurodag.io.nwb_spikes import ingest_session

ALIGN = {
    "go": {
        "column": "go_cue_time",
        "window_s": [-0.2, 0.5],
        "bin_size_s": 0.05,
        "condition": ["target"],
    }
}
SPEC = {"kind": "spikes", "format": "nwb", "path": "x.nwb"}


def params(**block) -> dict:
    """stages.ingest.spikes as the config validates it (schema defaults filled in)."""
    block.setdefault("alignments", ALIGN)
    config = validate({"datasets": {}, "stages": {"ingest": {"spikes": block}}})
    return config["stages"]["ingest"]["spikes"]


LAYOUTS = {
    "electrodes": {},
    "location_column": {"electrodes_ref": False, "location_column": True},
    "no_region": {"electrodes_ref": False},
}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def layout(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("nwb") / f"{request.param}.nwb"
    planted = write_session(path, **LAYOUTS[request.param])
    return request.param, path, planted


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = tmp_path_factory.mktemp("nwb") / "session.nwb"
    return path, write_session(path)


def test_the_layouts_pass_nwbinspector(layout):
    from nwbinspector import Importance, inspect_nwbfile

    _, path, _ = layout
    serious = (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION, Importance.ERROR)
    messages = [m for m in inspect_nwbfile(nwbfile_path=str(path)) if m.importance in serious]
    assert messages == []


def test_format_is_registered(tmp_path):
    write_session(tmp_path / "s1.nwb")
    write_session(tmp_path / "s2.nwb", seed=1)
    spec = {**SPEC, "path": str(tmp_path / "*.nwb")}
    assert formats.recordings(spec) == ["s1", "s2"]
    assert formats.recording_files(spec, "s2") == [tmp_path / "s2.nwb"]
    validate({"datasets": {"lab": spec}})  # kind spikes, format nwb is a valid dataset


def test_counts_equal_a_histogram_of_the_spikes_written(layout):
    name, path, planted = layout
    extra = {"region_column": "location"} if name == "location_column" else {}
    counts = ingest_session(path, SPEC, params(**extra))["counts"]
    assert counts["counts"].dims == ("neuron", "time")
    bin_size = counts.attrs["bin_size_s"]
    time = counts["time"].values
    edges = np.append(time - bin_size / 2, time[-1] + bin_size / 2)
    for u, spikes in enumerate(planted["spikes"]):
        expected, _ = np.histogram(spikes, edges)
        np.testing.assert_array_equal(counts["counts"].values[u], expected)
    regions = counts["region"].values.astype(str)
    if name == "no_region":
        assert set(regions) == {"unknown"} and "probe" not in counts.coords
    else:
        np.testing.assert_array_equal(regions, planted["region"])
    if name == "electrodes":
        assert set(counts["probe"].values.astype(str)) == {"probe0", "probe1"}
    assert counts["snr"].dims == ("neuron",)


def test_epochs_and_behaviour(session):
    path, _ = session
    counts = ingest_session(path, SPEC, params())["counts"]
    epoch = counts["epoch"].values.astype(str)
    time = counts["time"].values
    assert set(epoch[time < 4.5]) == {"spontaneous"}
    assert set(epoch[(time > 4.5) & (time < DURATION_S)]) == {"task"}
    behavior = counts["behavior"]
    assert behavior.dims == ("time", "variable")
    assert list(behavior["variable"].values) == ["position_x", "position_y"]
    inside = time < DURATION_S - 0.1
    x = behavior.sel(variable="position_x").values[inside]
    np.testing.assert_allclose(x, np.sin(time[inside] * 20 / 50), atol=1e-3)
    no_epochs = ingest_session(path, SPEC, params(epochs=None, behavior_module=None))["counts"]
    assert set(no_epochs["epoch"].values.astype(str)) == {"none"} and "behavior" not in no_epochs


def test_trials_aligned_on_an_event_column(session, caplog):
    path, planted = session
    with caplog.at_level("INFO"):
        go = ingest_session(path, SPEC, params())["go"]
    assert go["responses"].dims == ("trial", "neuron", "time")
    kept = np.isfinite(planted["go"])
    assert go.sizes["trial"] == kept.sum() == N_TRIALS - 3
    assert go.attrs["trials_dropped_nan"] == 3 and "3 of 24 trials" in caplog.text
    # every column of the table is a trial variable; condition and frame from target
    for column in ("start_time", "stop_time", "go_cue_time", "target"):
        assert go[column].dims == ("trial",)
    np.testing.assert_array_equal(go["condition"].values, planted["target"][kept].astype(str))
    np.testing.assert_array_equal(go["frame"].values, (planted["target"][kept] == 180).astype(int))
    edges = np.arange(15) * 0.05 - 0.2
    for k, onset in enumerate(planted["go"][kept]):
        for u, spikes in enumerate(planted["spikes"]):
            expected, _ = np.histogram(spikes - onset, edges)
            np.testing.assert_array_equal(go["responses"].values[k, u], expected)
    # the behaviour at each trial's bin centres
    assert go["behavior"].dims == ("trial", "time", "variable")
    times = planted["go"][kept][:, None] + go["time"].values[None, :]
    x = go["behavior"].sel(variable="position_x").values
    np.testing.assert_allclose(x, np.sin(times * 20 / 50), atol=1e-3)
    # the planted preference: units of the first region fire more for target 0
    rate = go["responses"].sel(time=slice(0, 0.3)).mean("time")
    first = go["region"].values.astype(str) == "CA1"
    by_target = rate.groupby(go["condition"]).mean("trial")
    assert (by_target.sel(condition="0") > by_target.sel(condition="180")).values[first].all()


def test_start_time_alignment_without_condition(session):
    path, planted = session
    options = {"table": "trials", "window_s": [0.0, 1.0], "bin_size_s": 0.1}
    out = ingest_session(path, SPEC, params(alignments={"trial": options}))["trial"]
    assert out.sizes["trial"] == N_TRIALS  # start_time is never NaN
    assert set(out["condition"].values) == {"all"}
    np.testing.assert_allclose(out["start_time"].values, planted["start"])


def test_cli_writes_the_folder(session, tmp_path):
    path, _ = session
    out = tmp_path / "out"
    status = main(
        [
            "ingest",
            "--recording",
            "session",
            "--spec",
            json.dumps(SPEC),
            "--params",
            json.dumps({"spikes": {"alignments": ALIGN}}),
            "--input",
            str(path),
            "-o",
            str(out),
        ]
    )
    assert status in (0, None)
    assert sorted(p.name for p in out.iterdir()) == ["counts.nc", "counts.png", "go.nc", "go.png"]
    with xr.open_dataset(out / "go.nc") as ds:
        assert ds.attrs["stimulus_name"] == "go"


# -- bad input ------------------------------------------------------------------------------


def _fails(tmp_path, nwb, block) -> str:
    """The CLI exits 2 with one message and writes nothing."""
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
                json.dumps({"spikes": block}),
                "--input",
                str(nwb),
                "-o",
                str(out),
            ]
        )
    assert status == 2, errors.getvalue()
    assert not out.exists()
    message = errors.getvalue().strip()
    assert str(nwb) in message
    return message


def test_no_units_table(tmp_path):
    path = tmp_path / "nounits.nwb"
    write_session(path, units=False)
    with pytest.raises(InputError, match="no units table"):
        ingest_session(path, SPEC, params())
    assert "units" in _fails(tmp_path, path, {"alignments": ALIGN})


def test_spike_times_index_past_its_data(tmp_path):
    path = tmp_path / "bad.nwb"
    write_session(path)
    with h5py.File(path, "a") as f:
        f["units/spike_times_index"][-1] = f["units/spike_times"].shape[0] + 10
    message = _fails(tmp_path, path, {"alignments": ALIGN})
    assert "units/spike_times_index" in message and "runs past" in message


def test_alignment_column_missing_lists_the_columns(session, tmp_path):
    path, _ = session
    block = {"alignments": {"go": {**ALIGN["go"], "column": "stim_on_time"}}}
    message = _fails(tmp_path, path, block)
    assert "intervals/trials/stim_on_time" in message
    assert "go_cue_time" in message and "target" in message and "start_time" in message


def test_condition_column_missing(session, tmp_path):
    path, _ = session
    block = {"alignments": {"go": {**ALIGN["go"], "condition": ["contrast"]}}}
    assert "intervals/trials/contrast" in _fails(tmp_path, path, block)


def test_window_outside_the_session(session, tmp_path):
    path, _ = session
    block = {"alignments": {"go": {**ALIGN["go"], "window_s": [-20.0, 0.5]}}}
    message = _fails(tmp_path, path, block)
    assert "intervals/trials/go_cue_time" in message and "outside the session" in message


def test_region_column_the_units_lack(session, tmp_path):
    path, _ = session
    message = _fails(tmp_path, path, {"region_column": "brain_area", "alignments": ALIGN})
    assert "units/brain_area" in message and "region_column" in message and "snr" in message


def test_interval_table_the_file_lacks_lists_the_tables(session, tmp_path):
    path, _ = session
    block = {"alignments": {"go": {**ALIGN["go"], "table": "passive"}}}
    message = _fails(tmp_path, path, block)
    assert "intervals/passive" in message and "epochs" in message and "trials" in message
    message = _fails(tmp_path, path, {"epochs": {"table": "blocks"}, "alignments": {}})
    assert "intervals/blocks" in message and "trials" in message


def test_unit_filter_on_a_numeric_column(session, tmp_path):
    path, _ = session
    out = ingest_session(path, SPEC, params(unit_filter={"snr": {"min": 3, "max": 6}}))
    np.testing.assert_array_equal(out["counts"]["snr"].values, [3.0, 4.0, 5.0, 6.0])
    assert out["go"].sizes["neuron"] == 4 and out["counts"].attrs["units_in_file"] == 8
    assert "units/quality" in _fails(
        tmp_path, path, {"unit_filter": {"quality": {"min": 1}}, "alignments": ALIGN}
    )
