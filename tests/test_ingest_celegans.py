"""C. elegans readers (dag2023-h5, celegans-nwb in both layouts, homogenized-parquet), bad input."""

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodag.config import defaults
from neurodag.errors import InputError
from neurodag.homogenize.calcium import homogenize_celegans
from neurodag.io.celegans import assign_labels, recording_dataset, repair_nan_gaps
from neurodag.io.celegans_nwb import CalciumRecording, read_celegans_nwb
from neurodag.io.dag2023 import label_sheet
from neurodag.io.formats import read, recording_files
from neurodag.io.formats import recordings as recording_names
from neurodag.io.netcdf import write_dataset
from neurodag.neurons import canonical_neurons

# ------------------------------------------------------------------------------------ labels


def test_labels_uncertain_duplicate_and_non_canonical_are_kept_apart():
    labels = ["AVAL", "AVAR?", "NSMR-alt", "", "IL2", "VB01", "AVAL", "SMDVL"]
    confidence = [5, 5, 5, np.nan, 5, 4, 3, 1]
    slots, flags = assign_labels(labels, confidence, min_confidence=3)
    assert slots == ["AVAL", None, None, None, None, "VB1", None, None]
    assert flags == [
        "",
        "uncertain",
        "uncertain",
        "unlabeled",
        "not_canonical",
        "",
        "duplicate",
        "uncertain",
    ]


def test_a_more_confident_duplicate_takes_the_slot():
    slots, flags = assign_labels(["AVAL", "AVAL"], [3, 5], min_confidence=1)
    assert slots == [None, "AVAL"] and flags == ["duplicate", ""]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([*canonical_neurons()[:20], "", "X?", "IL2"]), max_size=30))
def test_each_canonical_name_fills_at_most_one_slot(labels):
    slots, flags = assign_labels(labels)
    named = [s for s in slots if s]
    assert len(named) == len(set(named))
    assert all((s is None) == bool(f) for s, f in zip(slots, flags, strict=True))


# ---------------------------------------------------------------------------------- bad input


def test_short_nan_gaps_are_interpolated_long_ones_are_errors():
    x = np.arange(20, dtype=float)[:, None].repeat(2, axis=1)
    x[3:5, 0] = np.nan
    repaired, filled = repair_nan_gaps(x, 2, "f.nwb", ["AVAL", "AVAR"])
    assert filled == 2
    np.testing.assert_allclose(repaired[:, 0], np.arange(20))
    x[3:8, 1] = np.nan
    with pytest.raises(InputError, match="f.nwb: ROI AVAR: a NaN run of 5 frames"):
        repair_nan_gaps(x, 2, "f.nwb", ["AVAL", "AVAR"])


def test_non_monotonic_timestamps_are_an_error():
    rec = CalciumRecording(np.zeros((4, 1)), np.array([0.0, 1.0, 0.5, 2.0]), ["AVAL"])
    with pytest.raises(InputError, match="w.nwb: timestamps: .*not strictly increasing"):
        recording_dataset(rec, "w", "w.nwb")


def test_truncated_nwb_is_an_error_naming_the_file(tmp_path):
    bad = tmp_path / "worm.nwb"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(InputError, match="worm.nwb: not a readable NWB/HDF5 file"):
        read_celegans_nwb(bad)


def test_cli_ingest_of_a_corrupt_file_exits_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "worm.nwb"
    bad.write_bytes(b"not hdf5")
    out = tmp_path / "out.nc"
    spec = f'{{"kind": "celegans", "format": "celegans-nwb", "path": "{bad}"}}'
    result = run_cli("ingest", "--spec", spec, "--recording", "worm", "-o", str(out))
    assert result.returncode == 2
    assert "worm.nwb" in result.stderr and not out.exists()
    assert not list(tmp_path.glob(".out.nc*"))


def test_label_sheet_choice_and_missing_sheet(tmp_path):
    assert label_sheet(["labels v1", "labels v2 (1st audit)", "alt labels"], tmp_path) == (
        "labels v2 (1st audit)"
    )
    assert label_sheet(["labels v1", "labels v3", "neuron markers"], tmp_path) == "labels v3"
    with pytest.raises(InputError, match="no '\\(1st audit\\)' or 'labels v<N>' sheet"):
        label_sheet(["Sheet1"], tmp_path / "x.xlsx")


def test_spreadsheet_without_the_columns_is_an_error(tmp_path, shared_data):
    h5 = shared_data / "celegans" / "dag2023" / "2022-07-26-31-data.h5"
    sheet = tmp_path / "bad.xlsx"
    pd.DataFrame({"Neuron": ["AVAL"], "ROI": [1]}).to_excel(sheet, sheet_name="labels v1")
    from neurodag.io.dag2023 import read_dag2023

    with pytest.raises(InputError, match="bad.xlsx: sheet 'labels v1': missing column"):
        read_dag2023(h5, sheet)


# ------------------------------------------------------------------------ NWB, both layouts


def _nwbelegans_file(path, labels, data, rate=2.0):
    """The NWBelegans layout as h5py sees it (ndx-multichannel-volume's NeuronIDs labels)."""
    with h5py.File(path, "w") as f:
        f["identifier"] = "nwbelegans-worm"
        module = f.create_group("processing/CalciumActivity")
        series = module.create_group("SignalCalciumImResponseSeries")
        series.attrs["neurodata_type"] = "RoiResponseSeries"
        series["data"] = data
        series["starting_time"] = 5.0
        series["starting_time"].attrs["rate"] = rate
        ids = module.create_group("NeuronIDs")
        ids.attrs["neurodata_type"] = "SegmentationLabels"
        ids["labels"] = np.array(labels, dtype=object).astype("S")


def test_nwbelegans_layout_is_read(tmp_path):
    data = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    _nwbelegans_file(tmp_path / "w.nwb", ["AVAL", "", "RIML"], data)
    rec = read_celegans_nwb(tmp_path / "w.nwb")
    assert rec.labels == ["AVAL", "", "RIML"]
    np.testing.assert_array_equal(rec.traces, data)
    np.testing.assert_allclose(rec.timestamps, 5.0 + np.arange(30) / 2.0)


def test_nwbelegans_label_count_mismatch_is_an_error(tmp_path):
    _nwbelegans_file(tmp_path / "w.nwb", ["AVAL"], np.zeros((5, 3)))
    with pytest.raises(InputError, match="NeuronIDs/labels: 1 labels for 3 ROIs"):
        read_celegans_nwb(tmp_path / "w.nwb")


# --------------------------------------------------------------------------------- parquet


def test_homogenized_parquet_export_is_read(tmp_path):
    t = np.arange(10) / 2.0
    rows = [
        {
            "worm": "worm0",
            "dataset": "Kato2015",
            "neuron": "AVAL",
            "slot": 42,
            "is_labeled_neuron": True,
            "calcium_data": np.sin(t),
            "time_in_seconds": t,
        },
        {
            "worm": "worm0",
            "dataset": "Kato2015",
            "neuron": "17",
            "slot": 7,
            "is_labeled_neuron": False,
            "calcium_data": np.cos(t),
            "time_in_seconds": t,
        },
        {
            "worm": "worm1",
            "dataset": "Kato2015",
            "neuron": "AVAR",
            "slot": 43,
            "is_labeled_neuron": True,
            "calcium_data": t,
            "time_in_seconds": t,
        },
    ]
    path = tmp_path / "collection.parquet"
    pd.DataFrame(rows).to_parquet(path)
    spec = {"kind": "celegans", "format": "homogenized-parquet", "path": str(path)}
    assert recording_names(spec) == ["Kato2015-worm0", "Kato2015-worm1"]
    files = recording_files(spec, "Kato2015-worm0")
    ds = read(spec, "Kato2015-worm0", files, defaults("stages.ingest.celegans"))
    np.testing.assert_allclose(ds["activity"].sel(neuron="AVAL").values[0], np.sin(t), rtol=1e-6)
    assert ds["labeled"].sum() == 1
    np.testing.assert_allclose(ds["unlabeled_activity"].values[0, :, 0], np.cos(t), rtol=1e-6)


def test_parquet_without_the_columns_is_an_error(tmp_path):
    path = tmp_path / "x.parquet"
    pd.DataFrame({"worm": ["a"]}).to_parquet(path)
    spec = {"kind": "celegans", "format": "homogenized-parquet", "path": str(path)}
    with pytest.raises(InputError, match="x.parquet: columns: missing column"):
        recording_names(spec)


# ------------------------------------------------------------------ real Dag et al. 2023 worms


@pytest.mark.slow
def test_dag2023_worms_labelled_slots_and_aval_avar(shared_data, tmp_path):
    folder = shared_data / "celegans" / "dag2023"
    spec = {"kind": "celegans", "format": "dag2023-h5", "path": str(folder)}
    names = recording_names(spec)
    assert len(names) == 5
    files = []
    for name in names:
        ds = read(spec, name, recording_files(spec, name), defaults("stages.ingest.celegans"))
        assert {"velocity", "head_angle", "pumping", "reversal"} <= set(ds["variable"].values)
        files.append(write_dataset(ds, tmp_path / f"{name}.nc", stage="ingest"))
    out = homogenize_celegans(spec, {}, files, threads=1)
    labelled = out["labeled"].sum("neuron").to_series()
    assert labelled["2022-01-16-01"] == 0
    assert out["unlabeled_activity"].sel(worm="2022-01-16-01").notnull().any()
    for name in names[1:]:
        assert labelled[name] >= 80, labelled
        aval = out["activity"].sel(worm=name, neuron="AVAL").values
        avar = out["activity"].sel(worm=name, neuron="AVAR").values
        valid = np.isfinite(aval) & np.isfinite(avar)
        assert np.corrcoef(aval[valid], avar[valid])[0, 1] > 0.9, name
