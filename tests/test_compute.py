"""The Dask client from config and the torch device."""

import os
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurodag.compute import (
    available_cores,
    dask_client,
    parse_walltime,
    slurm_cluster,
    torch_device,
    worker_lifetime_args,
)
from neurodag.config import validate
from neurodag.errors import ConfigError


def test_local_client_runs_work_and_pins_blas():
    with dask_client({"cluster": "local", "workers": 1}) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert len(client.scheduler_info()["workers"]) == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_workers_never_exceed_cores(monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with dask_client({"workers": 64}) as client:
        assert len(client.scheduler_info()["workers"]) <= available_cores()
        # worker processes keep glibc's adaptive mmap threshold (see dask_client)
        trim = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        assert set(trim.values()) == {None}


def test_torch_device_cpu():
    assert torch_device("cpu").type == "cpu"
    assert torch_device("auto").type in {"cpu", "cuda"}


# --- SLURM (dask-jobqueue): the job script; the real SLURM run is in test_slurm.py ----------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("05:30", 330),
        ("01:00:00", 3600),
        ("2-00:00:00", 2 * 86400),
        ("1-12", 86400 + 12 * 3600),
        ("1-00:30", 86400 + 1800),
    ],
)
def test_parse_walltime(text, seconds):
    assert parse_walltime(text) == seconds


@pytest.mark.parametrize("text", ["", "ab", "1:2:3:4", "00:00:00"])
def test_parse_walltime_rejects(text):
    with pytest.raises(ConfigError, match="walltime"):
        parse_walltime(text)


@given(
    walltime_s=st.integers(min_value=120, max_value=7 * 86400),
    margin_min=st.floats(min_value=0.1, max_value=60),
)
def test_workers_retire_before_the_walltime(walltime_s, margin_min):
    hours, rest = divmod(walltime_s, 3600)
    walltime = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    try:
        args = worker_lifetime_args(walltime, margin_min)
    except ConfigError:
        assert margin_min * 60 * 1.5 >= walltime_s - 1  # only when the margin eats the walltime
        return
    lifetime = int(args[args.index("--lifetime") + 1].rstrip("s"))
    stagger = int(args[args.index("--lifetime-stagger") + 1].rstrip("s"))
    assert lifetime + stagger < walltime_s  # the latest retirement is still before the kill
    assert lifetime - stagger > 0


def test_slurm_job_script_carries_the_config():
    settings = validate(
        {
            "datasets": {},
            "compute": {
                "dask": {
                    "cluster": "slurm",
                    "slurm": {
                        "cores": 4,
                        "processes": 2,
                        "memory_mb": 8000,
                        "walltime": "02:00:00",
                        "queue": "short",
                        "account": "lab42",
                        "job_extra_directives": ["--qos=normal"],
                    },
                }
            },
        }
    )["compute"]["dask"]["slurm"]
    with slurm_cluster({**settings, "jobs": 0}) as cluster:
        script = cluster.job_script()
    assert "#SBATCH -p short" in script
    assert "#SBATCH -A lab42" in script
    assert "#SBATCH -t 02:00:00" in script
    assert "#SBATCH --cpus-per-task=4" in script
    assert "#SBATCH --qos=normal" in script
    assert "export OMP_NUM_THREADS=2" in script  # 4 cores / 2 processes
    assert "--nworkers 2" in script and "--nthreads 2" in script
    assert "--lifetime 6900s --lifetime-stagger 150s" in script  # 2 h - 5 min, +- 2.5 min
    assert sys.executable in script


def test_cli_takes_the_compute_section_and_validates_it():
    """The homogenize rule passes the config's compute section; a bad one is named, not run."""
    from conftest import run_cli

    result = run_cli(
        "homogenize",
        "--spec",
        '{"kind": "connectome", "format": "wormneuroatlas"}',
        "--compute",
        '{"dask": {"cluster": "address"}}',
        "-o",
        "never.nc",
    )
    assert result.returncode == 2
    assert "compute.dask" in result.stderr and "address" in result.stderr
    assert not os.path.exists("never.nc")
