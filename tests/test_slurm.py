"""The workflow and the Dask client on a real SLURM (single node on localhost, not a mock).

The fixture installs Debian's slurmctld/slurmd/munge when missing (root + apt; otherwise the
tests skip saying why), writes its own slurm.conf, starts the daemons and stops them at the end.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from local_slurm import LocalSlurm, SlurmUnavailable
from scratch_workflow import copy_workflow

from neurodag.io.netcdf import open_dataset, provenance

pytestmark = pytest.mark.slow

TINY_CONFIG = """\
datasets:
  connectome: {kind: connectome, format: wormneuroatlas}
  tiny_csv: {kind: connectome, format: openworm-csv, path: edges.csv}
  worms: {kind: celegans, format: simulated, simulate: {n_worms: 2, duration_s: 120}}
  allen: {kind: allen, format: simulated, enabled: false}
"""
#: What the tiny runs build: the homogenize stage of every dataset (the analysis stages have
#: their own tests; here the point is the executor, not the methods).
TARGETS = [f"results/homogenize/{name}.nc" for name in ("connectome", "tiny_csv", "worms")]

EDGES = """\
Origin,Target,Type,Number of Connections,Neurotransmitter
AVAL,AVAR,GapJunction,5,
AVAR,AVAL,GapJunction,5,
ASHL,AVAL,Send,8,Glutamate
AVAL,VB01,Send,2,Acetylcholine
AVBL,AVBR,Send,3,Acetylcholine
"""

OUTPUTS = (
    "results/homogenize/connectome.nc",
    "results/homogenize/tiny_csv.nc",
    "results/homogenize/worms.nc",
)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    try:
        LocalSlurm.install()
        cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"), cpus=4, memory_mb=8000).start()
    except SlurmUnavailable as reason:
        pytest.skip(f"no local SLURM: {reason}")
    try:
        yield cluster
    finally:
        cluster.stop()
    assert not [p for p in cluster.processes.values() if p.poll() is None]


def tiny_workflow(dest, config=TINY_CONFIG):
    """The workflow in a scratch folder, with the tiny config (tiny.yaml) and its CSV."""
    copy_workflow(dest)
    (dest / "edges.csv").write_text(EDGES)
    (dest / "tiny.yaml").write_text(config)
    return dest


def snakemake(*args, cwd, env=None, timeout=600):
    return subprocess.run(
        ["snakemake", "--configfile", "tiny.yaml", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def slurm_jobs(slurm, name=None):
    """(job id, name, state) of every job the controller still remembers (MinJobAge=600 s)."""
    command = ["squeue", "--states=all", "--noheader", "--format=%i|%j|%T"]
    out = subprocess.run(command, env=slurm.environment(), capture_output=True, text=True)
    rows = [line.split("|") for line in out.stdout.split()]
    return [row for row in rows if name is None or row[1] == name]


@pytest.fixture(scope="module")
def slurm_for_snakemake(slurm):
    if not slurm.system_conf_linked:
        pytest.skip(
            "the executor plugin's jobstep drops SLURM_CONF before srun, so srun needs "
            "/etc/slurm/slurm.conf, which exists here and belongs to another cluster"
        )
    return slurm


def test_profile_run_on_slurm_equals_local_run(slurm_for_snakemake, tmp_path):
    slurm = slurm_for_snakemake
    local = tiny_workflow(tmp_path / "local")
    result = snakemake("--cores", "2", *TARGETS, cwd=local)
    assert result.returncode == 0, result.stderr[-3000:]

    on_slurm = tiny_workflow(tmp_path / "slurm")
    before = {row[0] for row in slurm_jobs(slurm)}
    started = time.monotonic()
    result = snakemake(
        "--profile",
        "workflow/profiles/slurm",
        # this test cluster keeps no accounting database, so sacct cannot answer: use squeue
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-keep-successful-logs",
        *TARGETS,
        cwd=on_slurm,
        env=slurm.environment(),
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-4000:] + slurm.logs()
    # every job (all but the local `all`) really went through sbatch, and finished there
    n_jobs = len(list((local / "results" / "benchmarks").rglob("*.tsv")))
    new_jobs = [row for row in slurm_jobs(slurm) if row[0] not in before]
    assert len(new_jobs) == n_jobs, new_jobs
    assert all(state == "COMPLETED" for _, _, state in new_jobs), new_jobs
    logs = list((on_slurm / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(logs) == n_jobs
    print(f"SLURM run of {n_jobs} jobs took {elapsed:.1f} s")

    produced = sorted(p.relative_to(local) for p in (local / "results").rglob("*.nc"))
    assert {str(p) for p in produced} >= set(OUTPUTS)
    assert produced == sorted(p.relative_to(on_slurm) for p in (on_slurm / "results").rglob("*.nc"))
    for output in produced:
        a, b = open_dataset(local / output), open_dataset(on_slurm / output)
        assert set(a.data_vars) == set(b.data_vars)
        xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
        assert provenance(a)["parameters"] == provenance(b)["parameters"]
        assert same_inputs(provenance(a)["inputs"], local, provenance(b)["inputs"], on_slurm)


def same_inputs(inputs_a, root_a, inputs_b, root_b):
    """The same input files: same paths relative to each run's folder, and the same content
    for files from outside results/ (simulated NWB files carry their creation time)."""

    def key(item, root):
        path = Path(item["path"])
        if path.is_absolute() and path.is_relative_to(root):
            path = path.relative_to(root)
        relative = str(path)
        return relative, None if relative.startswith("results/") else item["sha256"]

    return [key(i, root_a) for i in inputs_a] == [key(i, root_b) for i in inputs_b]


def test_profile_resources_reach_sbatch(slurm_for_snakemake, tmp_path):
    """The job SLURM ran carries the profile's per-rule request (cpus, memory, time limit)."""
    slurm = slurm_for_snakemake
    workdir = tiny_workflow(tmp_path / "w")
    result = snakemake(
        "--profile",
        "workflow/profiles/slurm",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "results/homogenize/tiny_csv.nc",
        cwd=workdir,
        env=slurm.environment(),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    job_id = slurm_jobs(slurm)[-1][0]
    shown = subprocess.run(
        ["scontrol", "show", "job", job_id], env=slurm.environment(), capture_output=True, text=True
    ).stdout
    assert "NumCPUs=2" in shown, shown  # set-threads homogenize: 2 -> --cpus-per-task=2
    assert "mem=4000M" in shown, shown  # set-resources homogenize: mem_mb 4000
    assert "TimeLimit=00:30:00" in shown, shown  # set-resources homogenize: runtime 30


def test_dask_slurm_cluster_computes_a_stage(slurm, tmp_path, monkeypatch):
    """Workers are SLURM jobs; they compute the connectome consensus as a local run does; each
    retires before its walltime and is replaced by a fresh job, and the work goes on."""
    from neurodag.compute import dask_client
    from neurodag.config import validate
    from neurodag.homogenize.connectomes import build_connectome

    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    settings = validate(
        {
            "datasets": {},
            "compute": {
                "dask": {
                    "cluster": "slurm",
                    "slurm": {
                        "jobs": 2,
                        "cores": 1,
                        "memory_mb": 1500,
                        # 2-minute jobs: workers retire after 60 s +- 30 s
                        "walltime": "00:02:00",
                        "lifetime_margin_minutes": 1,
                        "log_directory": str(tmp_path / "dask-logs"),
                        "wait_timeout_s": 120,
                    },
                }
            },
        }
    )["compute"]["dask"]
    spec = {"kind": "connectome", "format": "wormneuroatlas"}
    variants = [{"functional_q_max": q} for q in (0.05, 0.01)]
    expected = [build_connectome(spec, v) for v in variants]

    with dask_client(settings) as client:
        client.wait_for_workers(2, timeout=120)
        first_jobs = set(client.run(os.getenv, "SLURM_JOB_ID").values())
        assert None not in first_jobs and len(first_jobs) == 2  # each worker is its own job
        results = client.gather(client.map(build_connectome, [spec] * 2, variants))
        for got, want in zip(results, expected, strict=True):
            xr.testing.assert_identical(got, want)
        assert not np.array_equal(results[0].weight.values, results[1].weight.values, True)

        # walltime safety: the first workers retire before SLURM's limit; replacements join
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            jobs = set(client.run(os.getenv, "SLURM_JOB_ID").values())
            if jobs and not jobs & first_jobs:
                break
            time.sleep(2)
        assert jobs and not jobs & first_jobs, (first_jobs, jobs)
        again = client.submit(build_connectome, spec, variants[0], pure=False).result()
        xr.testing.assert_identical(again, expected[0])

    states = {job: state for job, _, state in slurm_jobs(slurm)}
    # retired workers end their job cleanly, never by the time limit
    assert all(states.get(job) != "TIMEOUT" for job in first_jobs), states


def test_dask_slurm_cluster_refuses_clients_without_its_credentials(slurm, tmp_path, monkeypatch):
    """The worker job joins over TLS with the credentials its job script names; a client
    without them (plain TCP, TLS without a certificate, TLS with its own) is refused; the
    credentials are gone once the stage's cluster closes."""
    from intruders import assert_refused

    from neurodag.compute import dask_client
    from neurodag.config import validate

    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    shared = tmp_path / "shared"
    settings = validate(
        {
            "datasets": {},
            "compute": {
                "dask": {
                    "cluster": "slurm",
                    "slurm": {
                        "jobs": 1,
                        "cores": 1,
                        "memory_mb": 1500,
                        "log_directory": str(tmp_path / "dask-logs"),
                        "shared_temp_directory": str(shared),
                        "wait_timeout_s": 120,
                    },
                }
            },
        }
    )["compute"]["dask"]
    with dask_client(settings) as client:
        workers = client.scheduler_info()["workers"]
        assert workers and all(address.startswith("tls://") for address in workers)
        (job,) = set(client.run(os.getenv, "SLURM_JOB_ID").values())
        assert job is not None  # the worker really is a SLURM job
        assert len(list(shared.iterdir())) == 1  # the private credentials folder
        assert_refused(client)
    assert not list(shared.iterdir())
