"""Binning a Neuropixels-sized session: ``neurodag.spikes.bin_spikes`` against a per-unit
``numpy.histogram`` loop, in the same run, on the same spikes.

Run: ``python benchmarks/allen_binning.py [n_units] [n_spikes] [bin_size_s] [runs]`` (default 800
units, 5e7 spikes, 0.1 s bins over a 10,000 s session, 3 runs). Prints, for both methods, the
median wall time, spikes binned per second, and the peak memory they allocate on top of the
inputs (tracemalloc, which sees numpy's allocations), and checks the two give the same counts.
Set ``OMP_NUM_THREADS=1`` (numpy here is single-threaded anyway).
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc

import numpy as np

from neurodag.spikes import bin_spikes

SESSION_S = 10_000.0


def make_session(n_units: int, n_spikes: int, seed: int = 0):
    """Flat spike times (sorted within unit) and the ragged end offsets, rates log-normal."""
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 1.0, n_units)
    per_unit = rng.multinomial(n_spikes, weights / weights.sum())
    index = np.cumsum(per_unit)
    times = rng.uniform(0.0, SESSION_S, n_spikes)
    unit = np.repeat(np.arange(n_units), per_unit)
    times = times[np.lexsort((times, unit))]  # sorted within each unit, as NWB stores them
    return times, index


def histogram_loop(times, index, bin_size, n_bins):
    """The plain reference: one numpy.histogram per unit."""
    edges = np.arange(n_bins + 1) * bin_size
    counts = np.zeros((len(index), n_bins), dtype=np.int32)
    start = 0
    for unit, stop in enumerate(index):
        counts[unit] = np.histogram(times[start:stop], edges)[0]
        start = stop
    return counts


def measure(function, runs):
    seconds = []
    for _ in range(runs):
        begin = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - begin)
        del result
    tracemalloc.start()
    result = function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(seconds), peak, result


def main(n_units=800, n_spikes=50_000_000, bin_size=0.1, runs=3):
    times, index = make_session(n_units, n_spikes)
    n_bins = int(SESSION_S / bin_size)
    output_mib = n_units * n_bins * 4 / 2**20
    print(
        f"session: {n_units} units, {n_spikes:.3g} spikes, {SESSION_S:.0f} s, {bin_size} s bins"
        f" -> counts {n_units} x {n_bins} (int32, {output_mib:.0f} MiB)"
    )
    results = {}
    for name, function in (
        ("neurodag.spikes.bin_spikes", lambda: bin_spikes(times, index, 0.0, bin_size, n_bins)),
        ("per-unit np.histogram loop", lambda: histogram_loop(times, index, bin_size, n_bins)),
    ):
        seconds, peak, counts = measure(function, runs)
        results[name] = (seconds, counts)
        print(
            f"{name:28s} median {seconds:7.2f} s  {n_spikes / seconds / 1e6:7.1f} M spikes/s  "
            f"peak memory {peak / 2**20:7.0f} MiB (output included)"
        )
    (fast, fast_counts), (slow, slow_counts) = results.values()
    # A spike exactly on a bin edge may be assigned differently by floor() and histogram's
    # bisection; with continuous random times this does not happen, so demand equality.
    assert np.array_equal(fast_counts, slow_counts), "the two methods disagree"
    print(f"same counts; speed-up {slow / fast:.1f}x over the per-unit loop ({runs} runs each)")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        int(args[0]) if len(args) > 0 else 800,
        int(float(args[1])) if len(args) > 1 else 50_000_000,
        float(args[2]) if len(args) > 2 else 0.1,
        int(args[3]) if len(args) > 3 else 3,
    )
