"""Bi-clustering (Wei et al.) on the paper's simulation: recovery, speed, mixing and cost.

In one run:

1. seconds per MCMC sweep at the paper's setting (N = 30 neurons, T = 500 bins; the reference
   implementation of Wei et al. takes about 2 s per sweep), median of ``--timing-sweeps`` sweeps
   with and without the burn-in merge-split moves, wall and CPU time;
2. for each seed (each ``--sampler-seeds`` on each simulation seed), two chains run in parallel
   (two processes, as the stage runs them on a Dask cluster of two workers), then the posterior
   summary: neuron and state ARI against the planted truth, the worst rank-normalised split
   R-hat and the smallest bulk ESS over the label-invariant quantities (dispersions, log rates
   at the diagnostic bins, neuron and state co-clustering indicators, sorted state occupancy),
   and ESS per second: the smallest ESS divided by the wall time of the chains; with
   ``--counts``, the same on an ingest ``counts.nc`` (e.g. the default run's) selected as the
   stage selects it, without truth;
3. with ``--real-size``, the cost at the size of a real session's spontaneous activity (67 units
   x 3,000 bins of 0.5 s): wall time of chains plus summary, the peak memory (largest chain
   process + the summarising process) and the neuron ARI, for ``--real-iterations`` iterations.

Targets: neuron ARI >= 0.9, state ARI >= 0.8, R-hat <= 1.05, ESS >= 100.

The chains stop at the first convergence check they pass (every 200 iterations after the
200 of burn-in, at most 2,400); "iterations" is where they stopped.

Measured 2026-12-05 17:38-18:03 UTC on the shared 2-core machine, final defaults (2 chains;
2 continuous scans and the affine moves per sweep; 60 segment births and deaths, at the ends of
the sequence too, and 10 block moves; merge-split and state merges in burn-in):

- sweeps at N = 30, T = 500: 0.055 s after burn-in, 0.082 s with the burn-in moves (CPU = wall;
  reference ~2 s: 37x and 24x faster);
- the default run's counts (30 x 500), sampler seeds 0-7: 7 of 8 converged, after 800 / 2,400 /
  1,000 / - / 800 / 1,400 / 1,000 / 1,000 iterations (chains 52-167 s), worst R-hat
  1.019-1.035, smallest ESS 100.6-164.0; seed 3 did not within 2,400 (state occupancy and
  number of states, ESS 39: one chain held a 2-bin segment of a third state, made by FFBS, for
  80 sweeps; segment deaths may not remove a state's last bins, see
  ``BiclusterSampler._segment_proposal``);
- the paper's simulation, seeds 0 1 2: converged after 1,200 / 1,200 / 600 iterations (chains
  83.0 / 78.3 / 39.8 s), neuron ARI 1.000, state ARI 1.000 / 0.976 / 1.000, worst R-hat
  1.021 / 1.014 / 1.027, smallest ESS 134.6 / 123.2 / 104.9;
- real size (67 x 3,000, ``--seeds --real-size``): converged after 600 iterations (worst R-hat
  1.028, smallest ESS 232.3), 0.355 s per sweep, chains 212.9 s, 216.7 s in all (goal 300 s),
  peak memory 1,190 MB (goal 2 GB), neuron ARI 1.000 (6 of 6 clusters). Before the segment moves
  at the ends it took 1,200 iterations and 395 s: the first bins' states flickered (a short
  first segment in 7% of the draws, which only FFBS made and removed) and the state occupancy
  was the last quantity to reach an ESS of 100 (52 after 800 iterations).

Before (one continuous scan, no segment births and deaths, no checks: 2 x 1,200 iterations)
none of the 8 sampler seeds on the default run's counts converged: worst R-hat 1.038-1.426,
smallest ESS 4-64 (median 45); with 3 continuous scans, 3 of 8 had chains disagreeing on a
one-bin segment (R-hat 1.29-1.85), which the boundary shifts, keeping the number of segments,
could not remove.

    OMP_NUM_THREADS=1 python benchmarks/bicluster_simulation.py --seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/bicluster_simulation.py --seeds --real-size
    OMP_NUM_THREADS=1 python benchmarks/bicluster_simulation.py --counts \
        results/ingest/allen/session/counts.nc --sampler-seeds 0 1 2 3 4 5 6 7
"""

from __future__ import annotations

import argparse
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from neurodag.bicluster.fit import DIAGNOSED, run_chains, summarise
from neurodag.bicluster.sampler import BiclusterSampler, Settings
from neurodag.partitions import adjusted_rand
from neurodag.simulate.switching import switching_population


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument(
        "--sampler-seeds",
        type=int,
        nargs="*",
        help="sampler seeds to run on each simulation seed (default: the simulation seed)",
    )
    parser.add_argument("--iterations", type=int, default=Settings().n_iterations)
    parser.add_argument("--burn-in", type=int, default=Settings().burn_in)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timing-sweeps", type=int, default=20)
    parser.add_argument("--real-size", action="store_true")
    parser.add_argument("--real-iterations", type=int, default=Settings().n_iterations)
    parser.add_argument(
        "--counts",
        help="an ingest counts.nc to run instead of the simulation (e.g. the default run's "
        "results/ingest/allen/session/counts.nc), selected as the stage does (its defaults, "
        "with --regions); no truth, so no ARI",
    )
    parser.add_argument("--regions", nargs="*", default=["LP"])
    args = parser.parse_args()
    if args.counts and not Path(args.counts).is_file():
        parser.error(f"--counts: no such file: {args.counts} (run snakemake first for the default)")
    if args.timing_sweeps:
        time_sweeps(args.timing_sweeps)
    if args.counts:
        datasets = [("file", selected_counts(args.counts, args.regions), None, None)]
    else:
        datasets = []
        for seed in args.seeds:
            piece = switching_population(seed=seed)
            truth = (piece["true_cluster"].values, piece["true_state"].values)
            datasets.append((str(seed), piece["counts"].values, *truth))
    if datasets:
        print(
            "data  sampler  neuron_ARI  state_ARI  clusters  states  iterations  chains_s  "
            "summary_s  "
            "rhat_max  ess_min  ESS/s  not converged"
        )
    for label, counts, true_cluster, true_state in datasets:
        for sampler_seed in args.sampler_seeds or [int(label) if label.isdigit() else 0]:
            settings = Settings(
                n_iterations=args.iterations, burn_in=args.burn_in, seed=sampler_seed
            )
            out, chains_s, summary_s, _ = fit_parallel(counts, settings, args.chains, args.workers)
            aris = [
                f"{adjusted_rand(truth, out[name].values):.3f}" if truth is not None else "-"
                for truth, name in ((true_cluster, "neuron_cluster"), (true_state, "state"))
            ]
            print(
                f"{label:>4s}  {sampler_seed:7d}  {aris[0]:>10s}  {aris[1]:>9s}  "
                f"{np.unique(out['neuron_cluster']).size:8d}  {np.unique(out['state']).size:6d}  "
                f"{out.attrs['n_iterations_per_chain']:10d}  {chains_s:8.1f}  {summary_s:9.1f}  "
                f"{out.attrs['rhat_max']:8.3f}  "
                f"{out.attrs['ess_min']:7.1f}  {out.attrs['ess_min'] / chains_s:5.2f}  "
                f"{out.attrs['not_converged'] or '-'}",
                flush=True,
            )
            for name in DIAGNOSED:
                print(
                    f"      {name:20s} R-hat {out.attrs[f'rhat_{name}_max']:.3f}  "
                    f"ESS {out.attrs[f'ess_{name}_min']:.1f}"
                )
    if args.real_size:
        for sampler_seed in args.sampler_seeds or [0]:
            real_size(args.real_iterations, args.burn_in, args.chains, args.workers, sampler_seed)


def selected_counts(path: str, regions: list[str]) -> np.ndarray:
    """The (neuron, time) counts of an ingest counts.nc as the bicluster stage selects them (its
    defaults, the given regions)."""
    from neurodag.bicluster.stage import select_counts
    from neurodag.config import defaults

    params = {**defaults("stages.bicluster"), "regions": regions}
    return select_counts(Path(path), params).values


def fit_parallel(counts: np.ndarray, settings: Settings, n_chains: int, workers: int) -> tuple:
    """Chains in ``workers`` processes, then the summary here: (summary, chain seconds,
    summary seconds, peak RSS in MB of the largest chain process + this process)."""
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        draws, assessment = run_chains(counts, settings, n_chains, pool.submit)
    chains_s = time.perf_counter() - start
    start = time.perf_counter()
    out = summarise(counts, settings, draws, assessment)
    summary_s = time.perf_counter() - start
    peak_mb = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    ) / 1024
    return out, chains_s, summary_s, peak_mb


def real_size(n_iterations: int, burn_in: int, n_chains: int, workers: int, seed: int) -> None:
    """Cost at a real session's size: 67 units x 3,000 bins."""
    piece = switching_population(seed=0, n_clusters=6, neurons_per_cluster=12, n_time=3000)
    counts = piece["counts"].values[:67]
    settings = Settings(
        n_iterations=n_iterations, burn_in=min(burn_in, n_iterations // 2), seed=seed
    )
    out, chains_s, summary_s, peak_mb = fit_parallel(counts, settings, n_chains, workers)
    iterations = out.attrs["n_iterations_per_chain"]
    truth = piece["true_cluster"].values[:67]
    print(
        f"real size {counts.shape[0]} units x {counts.shape[1]} bins, sampler seed {seed}, "
        f"{n_chains} chains x "
        f"{iterations} iterations (at most {n_iterations}) on {workers} processes: chains "
        f"{chains_s:.1f} s ({chains_s / iterations * min(workers, n_chains) / n_chains:.3f} "
        f"s/sweep), summary "
        f"and diagnostics {summary_s:.1f} s, total {chains_s + summary_s:.1f} s; peak memory "
        f"{peak_mb:.0f} MB (largest chain process + summarising process); worst R-hat "
        f"{out.attrs['rhat_max']:.3f}, smallest ESS {out.attrs['ess_min']:.1f}; neuron ARI "
        f"{adjusted_rand(truth, out['neuron_cluster'].values):.3f} ({truth.max() + 1} planted "
        f"clusters, {np.unique(out['neuron_cluster'].values).size} found)",
        flush=True,
    )


def time_sweeps(n_sweeps: int, reference_s: float = 2.0) -> None:
    """Median seconds of one MCMC sweep at N = 30, T = 500, against the reference figure."""
    piece = switching_population(seed=0)
    sampler = BiclusterSampler(piece["counts"].values, Settings(seed=0), seed=0)
    state = sampler.initial_state()
    for burn_in in (True, False):
        sampler.burn_in = sampler.split_merge_active = burn_in
        wall, cpu = [], []
        for _ in range(n_sweeps):
            start, start_cpu = time.perf_counter(), time.process_time()
            sampler.sweep(state)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        median, median_cpu = float(np.median(wall)), float(np.median(cpu))
        label = "burn-in sweep (with merge-split)" if burn_in else "sweep after burn-in"
        # CPU time of this single-threaded process is what a machine shared with other jobs
        # leaves least distorted; wall time is what a user waits.
        print(
            f"{label}: median {median:.3f} s/sweep wall, {median_cpu:.3f} s CPU, over "
            f"{n_sweeps} sweeps (reference {reference_s:.1f} s: {reference_s / median:.1f}x "
            f"faster by wall time, {reference_s / median_cpu:.1f}x by CPU time)",
            flush=True,
        )


if __name__ == "__main__":
    main()
