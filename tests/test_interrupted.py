"""Interrupted runs: a Snakemake job SIGKILLed while it writes leaves no partial NetCDF, and a
rerun (after ``snakemake --unlock``) completes the DAG with the same result as an uninterrupted
run. (Cancelling a SLURM job with scancel sends the same kind of signal to the job's processes.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import xarray as xr
from test_slurm import TARGETS, TINY_CONFIG, snakemake, tiny_workflow

from neurodag.io.netcdf import open_dataset

pytestmark = pytest.mark.slow

TARGET = "results/homogenize/connectome.nc"


def kill_while_writing(workdir, attempts=3):
    """Run the workflow and SIGKILL it (Snakemake and its job) once the job's temporary file
    appears. Returns True when the kill landed mid-write (the output not yet renamed)."""
    out_dir = workdir / "results" / "homogenize"
    for _ in range(attempts):
        run = subprocess.Popen(
            ["snakemake", "--configfile", "tiny.yaml", "--cores", "1", TARGET],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: one killpg reaches the job too
        )
        deadline = time.monotonic() + 300
        try:
            while run.poll() is None and time.monotonic() < deadline:
                if out_dir.is_dir() and any(out_dir.glob(".connectome.nc.*.tmp")):
                    os.killpg(run.pid, signal.SIGKILL)
                    break
                time.sleep(0.002)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        if not (workdir / TARGET).exists():
            return True
        (workdir / TARGET).unlink()  # the write finished before the kill: try again
    return False


def test_killed_job_leaves_no_partial_output_and_rerun_completes(tmp_path, packaged_connectome):
    # the two connectome datasets only: the simulated worms add nothing here but minutes
    config = TINY_CONFIG.replace("worms: {", "worms: {enabled: false, ")
    workdir = tiny_workflow(tmp_path / "w", config)
    if not kill_while_writing(workdir):
        pytest.fail("never caught the job mid-write in 3 attempts")
    leftovers = list((workdir / "results" / "homogenize").glob(".connectome.nc.*.tmp"))
    assert leftovers, "the kill should have interrupted the writer's temporary file"
    assert not (workdir / TARGET).exists()

    # the killed Snakemake left its lock: unlock, then rerun (the profile sets rerun-incomplete)
    assert snakemake("--unlock", cwd=workdir).returncode == 0
    result = snakemake("--cores", "1", *TARGETS[:2], cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    ds = open_dataset(workdir / TARGET)
    xr.testing.assert_identical(ds.drop_attrs(), packaged_connectome.drop_attrs())
    assert (workdir / "results" / "homogenize" / "tiny_csv.nc").exists()  # the rest of the DAG
    assert not list((workdir / "results" / "homogenize").glob(".*.tmp"))  # litter cleared
