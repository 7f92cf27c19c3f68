"""Benchmark: homogenize a collection the size of the published one (Simeon et al.: ~900 worms).

Each worm: 300 traces, 1,000-3,000 frames at 0.5-4 Hz, generated inside its task from a seed (so
no data crosses process boundaries, as when workers read their own ingest files). Prints worms
per second for the generation alone (the reference cost that every run includes), for one
worker in-process, and for the Dask LocalCluster on 1 and on 2 worker processes.

    OMP_NUM_THREADS=1 python benchmarks/homogenize_celegans.py [--worms 900] [--neurons 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neurodag.config import stage_defaults
from neurodag.homogenize.calcium import homogenize_traces

PARAMS = stage_defaults("homogenize")["celegans"]


def synthetic_worm(seed: int, neurons: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = int(rng.integers(1000, 3001))
    frame_s = 1.0 / rng.uniform(0.5, 4.0)
    t = np.arange(frames) * frame_s + rng.uniform(-0.05, 0.05, frames) * frame_s
    t = np.maximum.accumulate(t) + np.arange(frames) * 1e-9
    x = rng.standard_normal((frames, neurons)).astype(np.float32)
    return t, x


def generate_only(seed: int, neurons: int) -> float:
    t, x = synthetic_worm(seed, neurons)
    return float(x[-1, 0])


def one_worm(seed: int, neurons: int) -> float:
    t, x = synthetic_worm(seed, neurons)
    grid, y = homogenize_traces(t, x, PARAMS)
    assert np.max(np.abs(np.diff(grid) - PARAMS["dt"])) < 1e-9
    return float(np.nansum(y[:, 0]))


def serial(function, worms: int, neurons: int) -> float:
    start = time.perf_counter()
    for seed in range(worms):
        function(seed, neurons)
    return time.perf_counter() - start


def on_dask(workers: int, worms: int, neurons: int) -> tuple[float, float]:
    """(seconds for the worms, seconds to start the cluster)."""
    from distributed import wait

    from neurodag.compute import dask_client

    start = time.perf_counter()
    with dask_client({"cluster": "local", "workers": workers}, threads=workers) as client:
        client.run(one_worm, 0, 1)  # every worker warm (imports done)
        ready = time.perf_counter()
        futures = client.map(one_worm, range(worms), neurons=neurons)
        wait(futures)
        results = client.gather(futures)
        done = time.perf_counter()
    assert len(results) == worms
    return done - ready, ready - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worms", type=int, default=900)
    parser.add_argument("--neurons", type=int, default=300)
    args = parser.parse_args()
    w, n = args.worms, args.neurons
    print(f"{w} worms x {n} traces x 1000-3000 frames -> dt {PARAMS['dt']:.4f} s")
    gen = serial(generate_only, w, n)
    print(f"generation only (reference)    : {gen:7.1f} s  {w / gen:7.1f} worms/s")
    one = serial(one_worm, w, n)
    print(f"1 worker, in process            : {one:7.1f} s  {w / one:7.1f} worms/s")
    for workers in (1, 2):
        seconds, startup = on_dask(workers, w, n)
        print(
            f"Dask LocalCluster, {workers} worker(s)  : {seconds:7.1f} s  "
            f"{w / seconds:7.1f} worms/s  (+{startup:.1f} s cluster start; "
            f"speed-up vs in-process {one / seconds:.2f}x)"
        )


if __name__ == "__main__":
    main()
