"""Shared fixtures. Slow tests run only with --slow (the README's test command passes it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from scratch_workflow import copy_workflow

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NEURODAG_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (see DESIGN.md, 'Real data')")
    return SHARED_DATA


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the neurodag CLI in a fresh interpreter, as a user or a Snakemake rule would."""
    return subprocess.run(
        [sys.executable, "-m", "neurodag", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def packaged_connectome():
    """The default connectome dataset, built once per test session."""
    from neurodag.homogenize.connectomes import build_connectome

    return build_connectome({"kind": "connectome", "format": "wormneuroatlas"})


def snakemake(*args: str, cwd: Path, timeout: int = 3000) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["snakemake", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """The embedded default run (`snakemake --cores all`), done once per test session."""
    workdir = copy_workflow(tmp_path_factory.mktemp("default_run"))
    result = snakemake("--cores", "all", cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir
