"""Where heavy work runs: the Dask client for a stage, BLAS thread pinning, the torch device.

Snakemake schedules files; inside one job a heavy stage parallelises with Dask. The client comes
from the ``compute`` section of the config:

- ``cluster: local`` — a LocalCluster sized from the job's threads (``--threads``, default: the
  CPUs this process may use) and memory, one thread per worker process with BLAS pinned to one
  thread, so that workers x BLAS threads never exceeds the cores Snakemake gave the job;
- ``cluster: address`` — connect to an existing scheduler at ``address``.

Heavy imports (dask.distributed, torch) happen inside the functions.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def dask_client(
    settings: Mapping[str, Any] | None = None,
    *,
    threads: int | None = None,
    memory_mb: int | None = None,
) -> Iterator[Any]:
    """A ``distributed.Client`` as the config's ``compute.dask`` section asks, closed on exit."""
    from distributed import Client, LocalCluster

    settings = dict(settings or {})
    kind = settings.get("cluster", "local")
    if kind == "address":
        client = Client(settings["address"])
        log.info("dask: connected to the scheduler at %s", settings["address"])
        try:
            yield client
        finally:
            client.close()
        return
    workers = settings.get("workers") or threads or available_cores()
    workers = max(1, min(int(workers), available_cores()))
    pin_blas_threads(1)
    memory_limit = f"{memory_mb // workers}MiB" if memory_mb else "auto"
    log.info("dask: local cluster of %d worker process(es), 1 thread each", workers)
    with (
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


def torch_device(preference: str = "auto") -> Any:
    """``cuda`` when present (or asked for), ``cpu`` otherwise."""
    import torch

    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        from neurodag.errors import ConfigError

        raise ConfigError("device: cuda was asked for but torch sees no CUDA device")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
