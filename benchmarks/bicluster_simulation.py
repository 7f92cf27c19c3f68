"""Bi-clustering (Wei et al.) on the paper's simulation: recovery and speed.

Prints, for each seed, the adjusted Rand index of the neuron clusters and of the states from the
posterior point estimates against the planted truth, the number of clusters/states found, the
seconds per MCMC iteration (N = 30, T = 500; the paper's reference implementation took about
2 s per iteration, the goal here is 0.2 s), and the worst R-hat / smallest ESS of the continuous
parameters. Targets: neuron ARI >= 0.9 and state ARI >= 0.8.

    OMP_NUM_THREADS=1 python benchmarks/bicluster_simulation.py --seeds 0 1 2 --iterations 300
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neurodag.bicluster.fit import run_chains, summarise
from neurodag.bicluster.sampler import Settings
from neurodag.partitions import adjusted_rand
from neurodag.simulate.switching import switching_population


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--chains", type=int, default=2)
    args = parser.parse_args()
    print("seed  neuron_ARI  state_ARI  clusters  states  s/iter  rhat_max  ess_min")
    for seed in args.seeds:
        piece = switching_population(seed=seed)
        settings = Settings(n_iterations=args.iterations, burn_in=args.iterations // 2, seed=seed)
        start = time.perf_counter()
        draws = run_chains(piece["counts"].values, settings, args.chains)
        per_iter = (time.perf_counter() - start) / (args.iterations * args.chains)
        out = summarise(piece["counts"].values, settings, draws)
        neuron_ari = adjusted_rand(piece["true_cluster"], out["neuron_cluster"])
        state_ari = adjusted_rand(piece["true_state"], out["state"])
        print(
            f"{seed:4d}  {neuron_ari:10.3f}  {state_ari:9.3f}  "
            f"{np.unique(out['neuron_cluster']).size:8d}  {np.unique(out['state']).size:6d}  "
            f"{per_iter:6.3f}  {out.attrs['rhat_log_rate_max']:8.2f}  "
            f"{out.attrs['ess_log_rate_min']:7.1f}",
            flush=True,
        )
    print("reference: ~2 s/iteration (Wei et al.'s implementation); goal <= 0.2 s/iteration")


if __name__ == "__main__":
    main()
