"""The Snakemake workflow end to end on the embedded default (in a scratch copy of the repo)."""

import pytest
from conftest import REPO, snakemake
from scratch_workflow import copy_workflow

from neurodag.io.netcdf import open_dataset, provenance


@pytest.fixture()
def workdir(tmp_path):
    return copy_workflow(tmp_path)


def test_dry_run_lists_the_dag(workdir):
    result = snakemake("-n", "--cores", "1", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "homogenize" in result.stdout
    assert "results/homogenize/connectome.nc" in result.stdout


def test_lint_is_clean():
    result = snakemake("--lint", cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_invalid_configfile_stops_with_the_key(workdir):
    bad = workdir / "bad.yaml"
    bad.write_text("datasets:\n  mine: {kind: connectome, format: excel}\n")
    result = snakemake("-n", "--cores", "1", "--configfile", str(bad), cwd=workdir)
    assert result.returncode != 0
    assert "datasets.mine.format" in result.stdout + result.stderr


@pytest.mark.slow
def test_default_run_writes_the_connectome(default_run):
    path = default_run / "results" / "homogenize" / "connectome.nc"
    ds = open_dataset(path)
    assert ds.sizes["pre"] == 300
    assert provenance(ds)["stage"] == "homogenize"
    assert (
        default_run / "results" / "homogenize" / "connectome.summary.png"
    ).stat().st_size > 10_000
    assert (default_run / "results" / "logs" / "homogenize" / "connectome.log").exists()
    assert (default_run / "results" / "benchmarks" / "homogenize" / "connectome.tsv").exists()
