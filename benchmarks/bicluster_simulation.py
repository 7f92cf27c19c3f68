"""Bi-clustering (Wei et al.) on the paper's simulation: recovery and speed.

Prints, for each seed, the adjusted Rand index of the neuron clusters and of the states from the
posterior point estimates against the planted truth, the number of clusters/states found, the
seconds per MCMC iteration (N = 30, T = 500; the paper's reference implementation took about
2 s per iteration, the goal here is 0.2 s), and the worst R-hat / smallest ESS of the continuous
parameters. Targets: neuron ARI >= 0.9 and state ARI >= 0.8.

The s/iter (wall) and cpu s/it columns are the whole chain (initialisation, burn-in sweeps with
merge-split moves, kept sweeps) divided by its iterations; a timing of single sweeps comes first
(median of ``--timing-sweeps`` sweeps, with and without the burn-in merge-split moves) against the
2 s reference, in the same run. On a shared machine the CPU time of this single-threaded process
is the figure least distorted by other jobs.

    OMP_NUM_THREADS=1 python benchmarks/bicluster_simulation.py --seeds 0 1 2 --iterations 300
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neurodag.bicluster.fit import run_chains, summarise
from neurodag.bicluster.sampler import BiclusterSampler, Settings
from neurodag.partitions import adjusted_rand
from neurodag.simulate.switching import switching_population


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--timing-sweeps", type=int, default=20)
    args = parser.parse_args()
    time_sweeps(args.timing_sweeps)
    print("seed  neuron_ARI  state_ARI  clusters  states  s/iter  cpu s/it  rhat_max  ess_min")
    for seed in args.seeds:
        piece = switching_population(seed=seed)
        settings = Settings(n_iterations=args.iterations, burn_in=args.iterations // 2, seed=seed)
        start, start_cpu = time.perf_counter(), time.process_time()
        draws = run_chains(piece["counts"].values, settings, args.chains)
        per_iter = (time.perf_counter() - start) / (args.iterations * args.chains)
        per_iter_cpu = (time.process_time() - start_cpu) / (args.iterations * args.chains)
        out = summarise(piece["counts"].values, settings, draws)
        neuron_ari = adjusted_rand(piece["true_cluster"], out["neuron_cluster"])
        state_ari = adjusted_rand(piece["true_state"], out["state"])
        print(
            f"{seed:4d}  {neuron_ari:10.3f}  {state_ari:9.3f}  "
            f"{np.unique(out['neuron_cluster']).size:8d}  {np.unique(out['state']).size:6d}  "
            f"{per_iter:6.3f}  {per_iter_cpu:7.3f}  {out.attrs['rhat_log_rate_max']:8.2f}  "
            f"{out.attrs['ess_log_rate_min']:7.1f}",
            flush=True,
        )
    print("reference: ~2 s/iteration (Wei et al.'s implementation); goal <= 0.2 s/iteration")


def time_sweeps(n_sweeps: int, reference_s: float = 2.0) -> None:
    """Median seconds of one MCMC sweep at N = 30, T = 500, against the reference figure."""
    piece = switching_population(seed=0)
    sampler = BiclusterSampler(piece["counts"].values, Settings(seed=0), seed=0)
    state = sampler.initial_state()
    for burn_in in (True, False):
        sampler.split_merge_active = burn_in
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
            f"{label}: median {median:.3f} s/iteration wall, {median_cpu:.3f} s CPU, over "
            f"{n_sweeps} sweeps (reference {reference_s:.1f} s: {reference_s / median:.1f}x "
            f"faster by wall time, {reference_s / median_cpu:.1f}x by CPU time; goal 0.2 s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
