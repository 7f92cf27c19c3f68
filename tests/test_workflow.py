"""The Snakemake workflow end to end on the embedded default (in a scratch copy of the repo)."""

import shutil
import subprocess

import pytest
from conftest import REPO

from neurodag.io.netcdf import open_dataset, provenance


def snakemake(*args, cwd):
    return subprocess.run(
        ["snakemake", *args], cwd=cwd, capture_output=True, text=True, timeout=1200
    )


@pytest.fixture()
def workdir(tmp_path):
    for name in ("Snakefile", "workflow", "config", "environment.yml"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, symlinks=True)
        else:
            shutil.copy(source, tmp_path / name)
    # the workflow's schema is a symlink into the package: keep it resolvable in the copy
    link = tmp_path / "workflow" / "schemas" / "config.schema.yaml"
    link.unlink()
    shutil.copy(REPO / "src" / "neurodag" / "schemas" / "config.schema.yaml", link)
    return tmp_path


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
def test_default_run_writes_the_connectome(workdir):
    result = snakemake("--cores", "all", cwd=workdir)
    assert result.returncode == 0, result.stderr
    path = workdir / "results" / "homogenize" / "connectome.nc"
    ds = open_dataset(path)
    assert ds.sizes["pre"] == 300
    assert provenance(ds)["stage"] == "homogenize"
    assert (workdir / "results" / "homogenize" / "connectome.png").stat().st_size > 10_000
    assert (workdir / "results" / "logs" / "homogenize" / "connectome.log").exists()
    assert (workdir / "results" / "benchmarks" / "homogenize" / "connectome.tsv").exists()
