"""The geometry rule on an RDM dataset, and region identification on the simulated sessions."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data  # noqa: F401
from test_workflow import snakemake, workdir  # noqa: F401

from neurodag.geometry.compare import identification_accuracy
from neurodag.geometry.rdm import upper
from neurodag.geometry.stage import region_rdm
from neurodag.io.netcdf import open_dataset, provenance
from neurodag.simulate.geometry import natural_scenes, sample_responses


def _rsa92_config(workdir, shared_data):  # noqa: F811
    path = workdir / "rsa92.yaml"
    folder = shared_data / "rsa92"
    path.write_text(
        "datasets:\n  rsa92:\n    kind: rdm\n    format: rdm-mat\n"
        f"    path: {folder / '92_brainRDMs.mat'}\n    models: {folder / '92_modelRDMs.mat'}\n"
        "stages:\n  geometry:\n    n_bootstrap: 5\n"
    )
    return path


def test_dry_run_has_the_geometry_job(workdir, shared_data):  # noqa: F811
    config = _rsa92_config(workdir, shared_data)
    result = snakemake("-n", "--cores", "1", "--configfile", str(config), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "results/geometry/rsa92.nc" in result.stdout


@pytest.mark.slow
def test_geometry_rule_runs_on_rdm_files(workdir, shared_data):  # noqa: F811
    config = _rsa92_config(workdir, shared_data)
    # the target first: --configfile takes every following word as a config file
    result = snakemake(
        "results/geometry/rsa92.nc", "--cores", "1", "--configfile", str(config), cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    ds = open_dataset(workdir / "results/geometry/rsa92.nc")
    assert provenance(ds)["stage"] == "geometry"
    assert (workdir / "results/geometry/rsa92.models.png").exists()
    assert (workdir / "results/benchmarks/geometry/rsa92.tsv").exists()


@pytest.mark.parametrize("distortion", [0.0, 1.0])
def test_regions_identified_from_simulated_sessions(distortion):
    """Done-when: regions of independent simulated sessions identified with accuracy >= 0.9,
    also when subjects' geometries differ by topology-preserving distortions."""
    params = {"method": "crossnobis", "noise": "shrinkage_diag"}
    vectors, labels, subjects = [], [], []
    for subject in range(4):
        piece = natural_scenes(
            seed=subject,
            image_seed=0,
            n_images=20,
            neurons_per_region=20,
            repeats=6,
            geometry_distortion=distortion,
        )
        responses = sample_responses(piece, seed=subject)
        patterns = responses["responses"].sum("time").values.astype(float)
        regions = responses["region"].values
        for region in np.unique(regions):
            rdm = region_rdm(patterns[:, regions == region], responses["frame"].values, params)
            vectors.append(upper(rdm))
            labels.append(region)
            subjects.append(subject)
    vectors = np.array(vectors)
    assert identification_accuracy(vectors, labels, subjects, kind="raw") >= 0.9
    assert identification_accuracy(vectors, labels, subjects, kind="gt", low=0.1, up=0.5) >= 0.9
    # shuffled labels: no better than chance would allow
    shuffled = np.random.default_rng(0).permutation(labels)
    assert identification_accuracy(vectors, shuffled, subjects, kind="raw") < 0.7
