"""A real single-node SLURM on localhost, for tests and benchmarks (not a mock).

Debian's ``slurmctld``, ``slurmd`` and ``munge`` run as child processes of this one, with every
file they write (munge key and socket, slurm.conf, state and spool directories, logs) under one
temporary directory, on ports picked free at start. The configuration avoids everything a
container may lack: no cgroups (``proctrack/linuxproc``, ``task/none``), no accounting database,
``config_overrides`` so that the node's CPUs/memory are taken from slurm.conf rather than probed.
Clients (sbatch, squeue, the Snakemake executor plugin, dask-jobqueue) find this cluster through
the ``SLURM_CONF`` environment variable, which :meth:`LocalSlurm.environment` provides. Inside a
job, the executor plugin's jobstep strips every ``SLURM_*`` variable but the job's identity
(``SLURM_CONF`` included) before it calls ``srun``, so srun falls back to the compiled-in default
``/etc/slurm/slurm.conf``: when that file is absent we link it to our slurm.conf while the cluster
runs, and remove the link on stop (an existing file is never touched; ``system_conf_linked``
says whether the link is ours).

``LocalSlurm.install()`` installs the Debian packages with apt when they are missing (root only).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
DAEMONS = ("munged", "slurmctld", "slurmd")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started here; the message says why."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _sbin(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


class LocalSlurm:
    """One SLURM controller + one compute node (this machine), started and stopped by us."""

    partition = "debug"

    def __init__(self, root: Path, *, cpus: int = 4, memory_mb: int = 8000):
        # munge's socket path must stay short (sun_path is 108 bytes)
        self.root = Path(root)
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.sock"
        self.processes: dict[str, subprocess.Popen] = {}
        self.system_conf_linked = False

    # -- installation ---------------------------------------------------------------------
    @staticmethod
    def missing() -> list[str]:
        wanted = {"munged": "munge", "slurmctld": "slurmctld", "slurmd": "slurmd"}
        wanted |= {"sbatch": "slurm-client", "squeue": "slurm-client"}
        return sorted({package for tool, package in wanted.items() if not _sbin(tool)})

    @classmethod
    def install(cls) -> None:
        """apt-get install the Debian packages if any tool is missing (needs root and apt)."""
        if not cls.missing():
            return
        if os.geteuid() != 0:
            raise SlurmUnavailable(
                f"SLURM tools missing ({', '.join(cls.missing())}) and not root, so cannot "
                "apt-get install slurmctld slurmd slurm-client munge"
            )
        if not shutil.which("apt-get"):
            raise SlurmUnavailable("SLURM tools missing and no apt-get to install them")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
        ):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise SlurmUnavailable(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")

    # -- configuration --------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        """Environment for SLURM clients (and everything they start) to reach this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_munge_key(self) -> Path:
        key = self.root / "munge" / "munge.key"
        key.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        return key

    def _write_conf(self) -> None:
        host = socket.gethostname().split(".")[0]
        for name in ("state", "spool", "log"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        user = os.environ.get("USER") or subprocess.check_output(["id", "-un"], text=True).strip()
        self.conf.write_text(
            "\n".join(
                [
                    "# single-node SLURM for neurodag's tests (written by tests/local_slurm.py)",
                    "ClusterName=neurodagtest",
                    f"SlurmctldHost={host}(127.0.0.1)",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    f"SlurmUser={user}",
                    f"SlurmdUser={user}",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"StateSaveLocation={self.root / 'state'}",
                    f"SlurmdSpoolDir={self.root / 'spool'}",
                    f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.root / 'slurmd.pid'}",
                    f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
                    # nothing that needs cgroups or a database: works inside containers
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "MpiDefault=none",
                    "SwitchType=switch/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SchedulerType=sched/builtin",
                    "SlurmdParameters=config_overrides",
                    "ReturnToService=2",
                    # keep finished jobs visible to squeue long enough for status polling
                    "MinJobAge=600",
                    "SlurmctldTimeout=30",
                    "SlurmdTimeout=30",
                    "InactiveLimit=0",
                    "KillWait=5",
                    "Waittime=0",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    f"NodeName={host} NodeAddr=127.0.0.1 CPUs={self.cpus} "
                    f"RealMemory={self.memory_mb} State=UNKNOWN",
                    f"PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE "
                    "State=UP",
                    "",
                ]
            )
        )

    # -- lifecycle ------------------------------------------------------------------------
    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")  # noqa: SIM115 (closed by the child)
        self.processes[name] = subprocess.Popen(
            command,
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our signals (e.g. Ctrl-C in pytest) do not reach it
        )
        log.close()

    def _wait_for(self, what: str, ready, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited early:\n{self.logs()}")
            if ready():
                return
            time.sleep(0.3)
        raise SlurmUnavailable(f"timed out waiting for {what}:\n{self.logs()}")

    def start(self) -> LocalSlurm:
        self.root.mkdir(parents=True, exist_ok=True)
        if len(str(self.munge_socket)) > 100:
            raise SlurmUnavailable(f"munge socket path too long: {self.munge_socket}")
        key = self._write_munge_key()
        self._write_conf()
        try:
            self._spawn(
                "munged",
                [
                    _sbin("munged"),
                    "--foreground",
                    "--force",
                    f"--socket={self.munge_socket}",
                    f"--key-file={key}",
                    f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                    f"--seed-file={self.root / 'munge' / 'munged.seed'}",
                    f"--log-file={self.root / 'log' / 'munged.log'}",
                ],
            )
            self._wait_for("munged", self.munge_socket.exists, timeout=20)
            self._spawn("slurmctld", [_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._wait_for("slurmctld", lambda: self._succeeds(["scontrol", "ping"]))
            self._spawn("slurmd", [_sbin("slurmd"), "-D", "-f", str(self.conf)])
            self._wait_for("an idle node", self._node_idle)
            self._link_system_conf()
        except BaseException:
            self.stop()
            raise
        return self

    def _link_system_conf(self) -> None:
        if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
            return
        try:
            SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
            SYSTEM_CONF.symlink_to(self.conf)
            self.system_conf_linked = True
        except OSError:
            pass  # not root: only jobs that keep SLURM_CONF (sbatch, dask-jobqueue) can run

    def _succeeds(self, command: list[str]) -> bool:
        done = subprocess.run(command, env=self.environment(), capture_output=True, text=True)
        return done.returncode == 0 and "DOWN" not in done.stdout

    def _node_idle(self) -> bool:
        done = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"],
            env=self.environment(),
            capture_output=True,
            text=True,
        )
        return done.returncode == 0 and done.stdout.strip() in {"idle", "mixed", "allocated"}

    def stop(self) -> None:
        """Stop every daemon this object started (slurmd, slurmctld, munged, in that order)."""
        if self.system_conf_linked and SYSTEM_CONF.is_symlink():
            SYSTEM_CONF.unlink()
            self.system_conf_linked = False
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            # cancel whatever is left so slurmd has no job processes to leave behind
            subprocess.run(
                ["scancel", "--full", f"--partition={self.partition}"],
                env=self.environment(),
                capture_output=True,
                timeout=30,
            )
        for name in reversed(DAEMONS):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace")
            parts.append(f"--- {path.name} ---\n{text[-3000:]}")
        return "\n".join(parts)

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
