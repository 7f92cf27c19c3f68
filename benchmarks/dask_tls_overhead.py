"""What TLS costs a stage's local Dask cluster: start-up, tiny-task round trips, and moving data.

The stages' clusters talk TLS with temporary credentials (neurodag.compute, "Nobody else gets
in"); this compares the same LocalCluster (2 worker processes, 1 thread each, no dashboard) with
TLS (``Security.temporary()``, as ``dask_client`` starts it) and with plain TCP. Medians over
``repeats`` fresh clusters of each kind, interleaved:

- start: the cluster and its client up, workers connected (includes generating the 2048-bit RSA
  key for TLS);
- tasks: ``tasks`` trivial tasks submitted at once and gathered (scheduler <-> worker messages);
- transfer: a ``mb`` MiB array made on one worker and pulled to the other, then to the client.

    python benchmarks/dask_tls_overhead.py [repeats] [tasks] [mb]
"""

from __future__ import annotations

import statistics
import sys
import time


def one_run(tls: bool, tasks: int, mb: int) -> dict[str, float]:
    import dask
    import numpy as np
    from distributed import Client, LocalCluster
    from distributed.security import Security

    from neurodag.compute import scheduler_http

    http_config, http_address = scheduler_http(None)
    start = time.perf_counter()
    with (
        dask.config.set(http_config),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            protocol="tls://" if tls else "tcp://",
            security=Security.temporary() if tls else None,
            dashboard_address=http_address,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        started = time.perf_counter() - start

        begin = time.perf_counter()
        client.gather(client.map(abs, range(-tasks, 0), pure=False))
        round_trips = time.perf_counter() - begin

        a, b = list(client.scheduler_info()["workers"])
        begin = time.perf_counter()
        size = mb * 2**20 // 8
        made = client.submit(np.ones, size, workers=[a], pure=False)
        summed = client.submit(np.sum, made, workers=[b], pure=False)  # a -> b
        assert summed.result() == size
        assert made.result().nbytes == size * 8  # a -> client
        transfer = time.perf_counter() - begin
    return {"start_s": started, "tasks_s": round_trips, "transfer_s": transfer}


def main(repeats: int = 3, tasks: int = 500, mb: int = 200) -> None:
    runs = {True: [], False: []}
    for _ in range(repeats):
        for tls in (False, True):
            runs[tls].append(one_run(tls, tasks, mb))
    print(
        f"local cluster, 2 worker processes; median of {repeats} fresh clusters each; "
        f"{tasks} tiny tasks; {mb} MiB moved worker->worker and worker->client"
    )
    plain = {k: statistics.median(r[k] for r in runs[False]) for k in runs[False][0]}
    tls = {k: statistics.median(r[k] for r in runs[True]) for k in runs[True][0]}
    for key, label in (("start_s", "start"), ("tasks_s", "tasks"), ("transfer_s", "transfer")):
        print(
            f"  {label:8s}: tcp {plain[key]:6.2f} s, tls {tls[key]:6.2f} s "
            f"-> +{tls[key] - plain[key]:5.2f} s ({tls[key] / plain[key]:.2f}x)"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
