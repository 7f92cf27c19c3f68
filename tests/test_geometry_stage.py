"""The geometry stage end to end: CLI on contract-shaped responses, RDM files, the RSA92 data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from conftest import REPO, run_cli, shared_data  # noqa: F401

from neurodag.io.netcdf import write_dataset
from neurodag.simulate.geometry import natural_scenes, sample_responses

FAST = {"n_bootstrap": 5, "grid_step": 0.5, "splits": 2, "min_neurons": 4}


@pytest.fixture(scope="module")
def responses_file(tmp_path_factory):
    piece = natural_scenes(n_images=12, image_size=12, neurons_per_region=10, repeats=6, seed=2)
    responses = sample_responses(piece, seed=0)
    # the trial factors of the planted images, as an ingest of a factorised stimulus would carry
    frames = responses["frame"].values
    responses["family"] = ("trial", piece["true_family"].values[frames] % 2)
    responses["luminance"] = ("trial", piece["true_luminance"].values[frames])
    path = tmp_path_factory.mktemp("ingest") / "natural_scenes.nc"
    write_dataset(responses, path, stage="ingest")
    return path, piece


def test_cli_writes_geometry_and_figures(tmp_path, responses_file):
    path, piece = responses_file
    out = tmp_path / "allen.nc"
    spec = {"kind": "connectome", "format": "wormneuroatlas"}  # kind allen on main's schema
    params = {**FAST, "factors": ["family", "luminance"]}
    result = run_cli(
        "geometry",
        "--spec",
        json.dumps(spec),
        "--params",
        json.dumps(params),
        "--input",
        str(path),
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    ds = xr.open_dataset(out)
    assert ds.attrs["stage"] == "geometry"
    assert set(ds["region"].values) == {"VISp", "VISl", "VISal", "VISam"}
    assert ds["rdm"].dims == ("region", "frame", "frame2")
    # the recovered RDMs follow the planted ones (Spearman of upper triangles)
    from scipy.stats import spearmanr

    iu = np.triu_indices(12, 1)
    for region in ds["region"].values:
        ours = ds["rdm"].sel(region=region).values[iu]
        true = piece["true_rdm"].sel(rdm_region=region).values[iu]
        assert spearmanr(ours, true)[0] > 0.5, region
    assert ds["identification"].sel(transform="raw", low=0.0, up=1.0) >= 0.75
    # the summary table's ground-truth figure: identification per transform at gt_example
    from neurodag.validation import collect

    accuracy = ds["validation_identification_accuracy"]
    assert float(accuracy.sel(transform="raw")) == float(
        ds["identification"].sel(transform="raw", low=0.0, up=1.0)
    )
    table = collect([out])
    figures = set(table.loc[table["stage"] == "geometry", "figure"])
    assert {f"identification_accuracy [transform {k}]" for k in ("raw", "gt")} <= figures
    assert ds["score"].dims == ("region", "model")
    assert np.all(np.isfinite(ds["parallelism_score"])) and np.all(ds["ccgp"] >= 0)
    for name in ("rdm", "rdm_gt", "models", "identification"):
        assert (tmp_path / f"allen.{name}.png").stat().st_size > 1000


def _geometry_refuses(tmp_path, ds: xr.Dataset, name: str, params: dict, message: str):
    """`neurodag geometry` on ``ds`` saved as ``name`` exits 2 with ``message``, writes nothing."""
    write_dataset(ds, tmp_path / name, stage="ingest")
    out = tmp_path / "never.nc"
    result = run_cli(
        "geometry",
        "--spec",
        json.dumps({"kind": "connectome", "format": "wormneuroatlas"}),
        "--params",
        json.dumps(params),
        "--input",
        str(tmp_path / name),
        "-o",
        str(out),
    )
    assert result.returncode == 2, result.stderr
    assert f"{name}: {message}" in result.stderr
    assert not out.exists()


def test_missing_variable_is_a_clean_error(tmp_path, responses_file):
    path, _ = responses_file
    broken = xr.open_dataset(path).drop_vars("frame").load()
    _geometry_refuses(tmp_path, broken, "broken.nc", FAST, "frame: missing")


def test_condition_shown_once_is_a_clean_error(tmp_path, responses_file):
    """Crossnobis needs two presentations of every condition; a blank shown once is named."""
    path, _ = responses_file
    ds = xr.open_dataset(path).load()
    frame = ds["frame"].values.copy()
    frame[0] = -1  # one blank presentation, the only one
    _geometry_refuses(
        tmp_path,
        ds.assign_coords(frame=("trial", frame)),
        "once.nc",
        {**FAST, "method": "crossnobis"},
        "frame: condition(s) [-1] shown only once",
    )


def test_rsa92_categorical_models_above_low_level(shared_data):  # noqa: F811
    """The done-when table: categorical models and monkey IT rank above V1/silhouette/RADON."""
    from neurodag.geometry.stage import rdm_model_table

    folder = shared_data / "rsa92"
    table = rdm_model_table(
        folder / "92_brainRDMs.mat", folder / "92_modelRDMs.mat", n_bootstrap=20, seed=0
    )
    categorical = table.loc[["animacy", "FaceBodyManmadeNatobj", "monkeyIT"], "score"]
    low_level = table.loc[["V1", "Silhouette", "RADON"], "score"]
    assert categorical.min() > low_level.max()
    assert (table.loc[["animacy", "V1"], "score_sem"] > 0).all()
    lower, upper = table.attrs["ceiling"]
    assert 0 < lower < upper <= 1


@pytest.mark.slow
def test_rsa92_through_the_cli(tmp_path, shared_data):  # noqa: F811
    folder = shared_data / "rsa92"
    spec = {
        "kind": "rdm",
        "format": "rdm-mat",
        "path": str(folder / "92_brainRDMs.mat"),
        "models": str(folder / "92_modelRDMs.mat"),
    }
    out = tmp_path / "rsa92.nc"
    result = run_cli(
        "geometry",
        "--spec",
        json.dumps(spec),
        "--params",
        json.dumps({"n_bootstrap": 3}),
        "-o",
        str(out),
        "--no-figures",
    )
    assert result.returncode == 0, result.stderr
    ds = xr.open_dataset(out)
    assert ds.sizes["entry"] == 8 and ds.sizes["stimulus"] == 92
    assert len(set(ds["subject"].values)) == 4
    assert ds["score"].sel(model="animacy") > ds["score"].sel(model="V1")


def test_several_recordings_are_the_subjects(tmp_path):
    from neurodag.geometry.stage import geometry_from_responses

    paths = []
    for subject in range(3):
        piece = natural_scenes(
            n_images=10,
            image_size=12,
            neurons_per_region=8,
            repeats=4,
            seed=subject,
            image_seed=0,
        )
        paths.append(tmp_path / f"rec{subject}.nc")
        write_dataset(sample_responses(piece, seed=subject), paths[-1], stage="ingest")
    from neurodag.config import validate

    params = {**validate({"datasets": {}})["stages"]["geometry"], **FAST}
    ds = geometry_from_responses(paths, params)
    assert ds.sizes["split"] == 3 * 4  # one RDM per recording and region
    assert sorted(set(ds["split_subject"].values)) == [0, 1, 2]
    assert ds["identification"].sel(transform="raw", low=0.0, up=1.0) > 0.5
    other = natural_scenes(n_images=8, image_size=12, neurons_per_region=8, repeats=4, seed=5)
    write_dataset(sample_responses(other), tmp_path / "other.nc", stage="ingest")
    from neurodag.errors import InputError

    with pytest.raises(InputError, match="frames differ"):
        geometry_from_responses([paths[0], tmp_path / "other.nc"], params)
