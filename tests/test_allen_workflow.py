"""The simulate and ingest rules for kind allen datasets (in a scratch copy of the repo)."""

import shutil

import numpy as np
import pytest
from test_workflow import snakemake, workdir  # noqa: F401 (fixture)

from neurodag.io.netcdf import open_dataset
from neurodag.simulate.allen import simulate, write_session

# A dataset of its own: a --configfile merges mappings into the default `allen` entry.
TINY = """
datasets:
  connectome: {kind: connectome, format: wormneuroatlas, enabled: false}
  allen: {kind: allen, format: simulated, enabled: false}
  worms: {kind: celegans, format: simulated, enabled: false}
  tiny:
    kind: allen
    format: simulated
    simulate: {seed: 2, pieces: [demo_states, {demo_gratings: {repeats: 3}}]}
    responses:
      static_gratings: {window_s: [0.0, 0.25], bin_size_s: 0.025}
"""


def test_default_dry_run_simulates_and_ingests_every_stimulus(workdir):  # noqa: F811
    result = snakemake("-n", "--cores", "1", cwd=workdir)
    assert result.returncode == 0, result.stderr
    for path in (
        "results/simulate/allen/session.nwb",
        "results/ingest/allen/session/counts.nc",
        "results/ingest/allen/session/natural_scenes.nc",
        "results/ingest/allen/session/lorenz_trials.nc",
    ):
        assert path in result.stdout


@pytest.mark.slow
def test_real_sessions_are_found_by_path(workdir, tmp_path):  # noqa: F811
    """An allen-nwb dataset: one recording per file, named by the file's stem."""
    sessions = tmp_path / "sessions"
    session = simulate({"seed": 1, "pieces": ["demo_states", "demo_gratings"]})
    write_session(session, sessions, parameters={})
    shutil.move(sessions / "session.nwb", sessions / "session_715093703.nwb")
    mine = workdir / "mine.yaml"
    mine.write_text(
        f"datasets:\n  mine: {{kind: allen, format: allen-nwb, path: {sessions}}}\n"
        "  allen: {kind: allen, format: simulated, enabled: false}\n"
    )
    result = snakemake("-n", "--cores", "1", "--configfile", str(mine), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "results/ingest/mine/session_715093703/counts.nc" in result.stdout
    # the stage default aligns natural_scenes; this file has none, which the job would report
    assert "results/ingest/mine/session_715093703/natural_scenes.nc" in result.stdout
    assert "simulate_allen" not in result.stdout
    assert "ingest_mine" in result.stdout


@pytest.mark.slow
def test_tiny_run_writes_the_ingest_files(workdir):  # noqa: F811
    (workdir / "tiny.yaml").write_text(TINY)
    folder = "results/ingest/tiny/session"
    targets = [f"{folder}/counts.nc", f"{folder}/static_gratings.nc"]
    # targets first: --configfile takes every following word as a config file
    result = snakemake(*targets, "--cores", "2", "--configfile", "tiny.yaml", cwd=workdir)
    assert result.returncode == 0, result.stderr
    folder = workdir / "results" / "ingest" / "tiny" / "session"
    counts = open_dataset(folder / "counts.nc")
    responses = open_dataset(folder / "static_gratings.nc")
    assert counts["counts"].sum() > 0 and np.isnan(responses["orientation"]).any()
    assert (folder / "counts.png").stat().st_size > 0
    assert (folder / "static_gratings.png").stat().st_size > 0
    for log in ("simulate/tiny.log", "ingest/tiny/session.log"):
        assert (workdir / "results" / "logs" / log).exists()
    assert (workdir / "results" / "benchmarks" / "ingest" / "tiny" / "session.tsv").exists()
