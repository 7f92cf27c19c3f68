"""Where heavy work runs: the Dask client for a stage, BLAS thread pinning, the torch device.

Snakemake schedules files; inside one job a heavy stage parallelises with Dask. The client comes
from the ``compute`` section of the config:

- ``cluster: local`` — a LocalCluster sized from the job's threads (``--threads``, default: the
  CPUs this process may use) and memory, one thread per worker process with BLAS pinned to one
  thread, so that workers x BLAS threads never exceeds the cores Snakemake gave the job;
- ``cluster: slurm`` — a dask-jobqueue ``SLURMCluster``: the scheduler runs inside this process
  (the Snakemake job), workers are SLURM jobs of ``slurm.cores`` cores / ``slurm.memory_mb`` each.
  Workers are walltime-safe: each retires (``--lifetime``) ``slurm.lifetime_margin_minutes``
  before its job's walltime, staggered so they do not all leave at once, and adaptive scaling
  between ``slurm.jobs`` and ``slurm.jobs`` submits a replacement job for each retired worker, so a
  computation longer than one walltime moves its tasks to fresh workers instead of losing them to
  SLURM's kill (dask-jobqueue's "How to handle job queueing system walltime killing workers");
- ``cluster: address`` — connect to an existing scheduler at ``address``.

Heavy imports (dask.distributed, dask_jobqueue, torch) happen inside the functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)

BLAS_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def available_cores() -> int:
    """CPUs this process may run on (respects taskset / SLURM cgroups, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pin_blas_threads(n: int = 1) -> None:
    """Limit BLAS/OpenMP threads, for this process and the worker processes it starts."""
    for name in BLAS_VARIABLES:
        os.environ[name] = str(n)


def dask_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """A ``compute.dask`` section validated, with the schema's defaults filled in."""
    from neurodag.config import validate

    block = {"datasets": {}, "compute": {"dask": dict(settings or {})}}
    return validate(block, source="compute.dask")["compute"]["dask"]


@contextlib.contextmanager
def dask_client(
    settings: Mapping[str, Any] | None = None,
    *,
    threads: int | None = None,
    memory_mb: int | None = None,
) -> Iterator[Any]:
    """A ``distributed.Client`` as the config's ``compute.dask`` section asks, closed on exit."""
    import dask
    from distributed import Client, LocalCluster

    settings = dask_settings(settings)
    kind = settings["cluster"]
    if kind == "slurm":
        slurm = settings["slurm"]
        with slurm_cluster(slurm) as cluster, Client(cluster) as client:
            jobs = int(slurm["jobs"])
            timeout = slurm["wait_timeout_s"]
            log.info("dask: SLURM cluster of %d worker job(s), waiting for the first", jobs)
            # start as soon as one worker is up; the others join while work runs
            client.wait_for_workers(1, timeout=timeout)
            yield client
        return
    if kind == "address":
        client = Client(settings["address"])
        log.info("dask: connected to the scheduler at %s", settings["address"])
        try:
            yield client
        finally:
            client.close()
        return
    workers = settings["workers"] or threads or available_cores()
    workers = max(1, min(int(workers), available_cores()))
    pin_blas_threads(1)
    memory_limit = f"{memory_mb // workers}MiB" if memory_mb else "auto"
    log.info("dask: local cluster of %d worker process(es), 1 thread each", workers)
    # distributed starts workers with MALLOC_TRIM_THRESHOLD_ set, which switches off glibc's
    # adaptive mmap threshold: every large numpy temporary is then a fresh mmap with page
    # faults, ~35% slower on the homogenizer (benchmarks/homogenize_celegans.py). Unset it.
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=workers > 1,
            memory_limit=memory_limit,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def parse_walltime(text: str | int) -> int:
    """Seconds in a SLURM time limit: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``."""
    from neurodag.errors import ConfigError

    value = str(text).strip()
    try:
        days, _, clock = value.rpartition("-") if "-" in value else ("0", "", value)
        parts = [int(part) for part in clock.split(":")]
        days = int(days)
    except ValueError:
        raise ConfigError(f"compute.dask.slurm.walltime: {text!r} is not a SLURM time") from None
    if "-" in value:  # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 1:  # minutes
        hours, minutes, seconds = 0, parts[0], 0
    elif len(parts) == 2:  # MM:SS
        hours, (minutes, seconds) = 0, parts
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:
        raise ConfigError(f"compute.dask.slurm.walltime: {text!r} is not a SLURM time")
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ConfigError(f"compute.dask.slurm.walltime: {text!r} must be positive")
    return total


def worker_lifetime_args(walltime: str | int, margin_minutes: float) -> list[str]:
    """``dask worker`` options that retire a worker safely before SLURM kills its job.

    The worker lives ``walltime - margin`` (give or take a stagger of ``margin / 2``), so it
    finishes handing its data over at least ``margin / 2`` before the job's time limit.
    """
    from neurodag.errors import ConfigError

    total = parse_walltime(walltime)
    margin = int(margin_minutes * 60)
    stagger = margin // 2
    lifetime = total - margin
    if lifetime - stagger <= 0:
        raise ConfigError(
            f"compute.dask.slurm.lifetime_margin_minutes: {margin_minutes} min leaves no working "
            f"time within the walltime {walltime}; lower it or raise the walltime"
        )
    return ["--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s"]


@contextlib.contextmanager
def slurm_cluster(slurm: Mapping[str, Any]) -> Iterator[Any]:
    """A dask-jobqueue SLURMCluster from the config's ``compute.dask.slurm`` section, adaptive
    between ``jobs`` and ``jobs`` worker jobs (so retired workers are replaced), closed on exit."""
    import sys

    from dask_jobqueue import SLURMCluster

    cores = int(slurm["cores"])
    processes = int(slurm["processes"])
    walltime = slurm["walltime"]
    threads_per_process = max(1, cores // processes)
    blas = [f"export {name}={threads_per_process}" for name in BLAS_VARIABLES]
    cluster = SLURMCluster(
        cores=cores,
        processes=processes,
        memory=f"{int(slurm['memory_mb'])}MiB",
        walltime=walltime,
        queue=slurm.get("queue"),
        account=slurm.get("account"),
        job_extra_directives=list(slurm.get("job_extra_directives") or []),
        job_script_prologue=[*blas, *(slurm.get("job_script_prologue") or [])],
        worker_extra_args=worker_lifetime_args(
            walltime, float(slurm["lifetime_margin_minutes"])
        ),
        interface=slurm.get("interface"),
        local_directory=slurm.get("local_directory"),
        log_directory=slurm.get("log_directory"),
        python=slurm.get("python") or sys.executable,
        scheduler_options={"dashboard_address": None},
    )
    try:
        jobs = int(slurm["jobs"])
        cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
        yield cluster
    finally:
        cluster.close()


def torch_device(preference: str = "auto") -> Any:
    """``cuda`` when present (or asked for), ``cpu`` otherwise."""
    import torch

    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        from neurodag.errors import ConfigError

        raise ConfigError("device: cuda was asked for but torch sees no CUDA device")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclasses.dataclass(frozen=True)
class Compute:
    """Where a stage computes: the config's ``compute`` section plus the job's size.

    Every stage's ``run`` takes one (``compute=``); ``threads`` and ``memory_mb`` are what the
    Snakemake job was given (None: the whole machine)."""

    dask: Mapping[str, Any]
    device: str
    threads: int | None = None
    memory_mb: int | None = None

    @classmethod
    def from_config(
        cls,
        section: Mapping[str, Any] | None = None,
        *,
        threads: int | None = None,
        memory_mb: int | None = None,
        device: str | None = None,
    ) -> Compute:
        """From a ``compute`` section (validated here, so schema defaults fill what is absent)."""
        from neurodag.config import validate

        section = validate({"datasets": {}, "compute": dict(section or {})}, source="compute")[
            "compute"
        ]
        return cls(section["dask"], device or section["device"], threads, memory_mb)

    def client(self, workers: int | None = None):
        """The Dask client of the stage (a context manager); ``workers`` caps a local cluster."""
        threads = self.threads if workers is None else min(workers, self.threads or workers)
        return dask_client(self.dask, threads=threads, memory_mb=self.memory_mb)

    def torch_device(self):
        return torch_device(self.device)
