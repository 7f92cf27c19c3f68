"""The Dask client from config and the torch device; nobody but the stage gets into its cluster."""

import logging
import os
import stat
import sys
import urllib.error
import urllib.request

import pytest
from distributed import Client
from hypothesis import given
from hypothesis import strategies as st
from intruders import assert_refused

from neurodag.compute import (
    address_security,
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


def test_slurm_workers_get_the_cluster_credentials_as_private_files(tmp_path):
    """The job script hands the workers TLS key/certificate files (never the key itself) in a
    folder only this user can read; the scheduler is TLS, its HTTP server serves nothing beyond
    127.0.0.1; the credentials are deleted when the cluster closes."""
    settings = validate({"datasets": {}, "compute": {"dask": {"cluster": "slurm"}}})
    slurm = {**settings["compute"]["dask"]["slurm"], "jobs": 0}
    with slurm_cluster({**slurm, "shared_temp_directory": str(tmp_path)}) as cluster:
        script = cluster.job_script()
        assert cluster.scheduler_address.startswith("tls://")
        assert "--protocol tls://" in script
        files = {}
        for option in ("--tls-ca-file", "--tls-cert", "--tls-key"):
            assert option in script, script
            files[option] = script.split(option + " ")[1].split()[0]
        assert "PRIVATE KEY" not in script
        folders = {os.path.dirname(path) for path in files.values()}
        assert len(folders) == 1
        (folder,) = folders
        assert os.path.dirname(folder) == str(tmp_path)
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        for path in files.values():
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(files["--tls-key"]) as key:
            assert "PRIVATE KEY" in key.read()
        assert cluster.security.tls_ca_file == files["--tls-ca-file"]
        hosts = {s.getsockname()[0] for s in cluster.scheduler.http_server._sockets.values()}
        assert hosts == {"127.0.0.1"}
    assert not os.path.exists(folder)


# --- nobody else gets in ---------------------------------------------------------------------


def test_local_cluster_refuses_clients_without_its_credentials():
    with dask_client({"cluster": "local", "workers": 2}) as client:
        info = client.scheduler_info()
        assert len(info["workers"]) == 2
        assert all(address.startswith("tls://127.0.0.1:") for address in info["workers"])
        assert_refused(client)


def test_one_worker_cluster_listens_on_no_port():
    with dask_client({"cluster": "local", "workers": 1}) as client:
        assert client.scheduler.address.startswith("inproc://")
        assert client.submit(sum, [1, 2]).result() == 3


def _http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize(("dashboard", "status"), [(None, 404), ("127.0.0.1:0", 200)])
def test_dashboard_only_when_asked_for(dashboard, status):
    """Off by default: the scheduler's HTTP server serves no page (not even its info pages);
    with compute.dask.dashboard it serves them."""
    settings = validate({"datasets": {}, "compute": {"dask": {"dashboard": dashboard}}})
    with dask_client({**settings["compute"]["dask"], "workers": 2}) as client:
        port = client.scheduler_info()["services"]["dashboard"]
        assert _http_status(port, "/health") == status
        assert _http_status(port, "/info/main/workers.html") in {status, 302}


def _tls_files(folder):
    """A Security.temporary()'s CA, certificate and key written to PEM files."""
    from distributed.security import Security

    fresh = Security.temporary()
    paths = {}
    for name, pem in (
        ("ca_file", fresh.tls_ca_file),
        ("cert", fresh.tls_client_cert),
        ("key", fresh.tls_client_key),
    ):
        paths[name] = str(folder / f"{name}.pem")
        (folder / f"{name}.pem").write_text(pem)
    return paths


def test_address_mode_connects_with_the_users_tls_files(tmp_path):
    """cluster: address takes TLS files from compute.dask.tls, or from Dask's own config."""
    import dask
    from distributed import LocalCluster
    from distributed.security import Security

    tls = _tls_files(tmp_path)
    security = Security(
        require_encryption=True,
        tls_ca_file=tls["ca_file"],
        **{
            f"tls_{role}_{p}": tls[p]
            for role in ("client", "scheduler", "worker")
            for p in ("cert", "key")
        },
    )
    with LocalCluster(
        n_workers=1,
        processes=False,
        protocol="tls://",
        security=security,
        dashboard_address="127.0.0.1:0",
    ) as cluster:
        address = cluster.scheduler_address
        settings = validate(
            {"datasets": {}, "compute": {"dask": {"cluster": "address", "address": address}}}
        )["compute"]["dask"]
        with dask_client({**settings, "tls": tls}) as client:
            assert client.submit(sum, [1, 2]).result() == 3
        config = {
            "distributed.comm.tls.ca-file": tls["ca_file"],
            "distributed.comm.tls.client.cert": tls["cert"],
            "distributed.comm.tls.client.key": tls["key"],
        }
        with dask.config.set(config), dask_client(settings) as client:
            assert client.submit(sum, [3, 4]).result() == 7
        with Client(address, security=security, timeout="10s") as client:
            assert_refused(client)


@pytest.mark.parametrize(
    ("address", "tls", "key"),
    [
        ("tls://127.0.0.1:1", {"ca_file": "CA"}, "compute.dask.tls"),
        ("tls://127.0.0.1:1", {"ca_file": "CA", "cert": "C", "key": "missing.pem"}, "tls.key"),
        ("tcp://127.0.0.1:1", {"ca_file": "CA", "cert": "C", "key": "K"}, "compute.dask.address"),
    ],
)
def test_address_tls_settings_are_checked(tmp_path, address, tls, key):
    for name in ("CA", "C", "K"):
        (tmp_path / name).write_text("pem")
    tls = {k: (str(tmp_path / v) if v != "missing.pem" else v) for k, v in tls.items()}
    with pytest.raises(ConfigError, match=key):
        address_security(address, tls)


def test_plain_tcp_scheduler_is_used_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="neurodag.compute"):
        security = address_security("tcp://10.0.0.5:8786", {})
    assert not security.require_encryption
    assert "not TLS" in caplog.text


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
