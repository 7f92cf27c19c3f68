"""Weighted SBM (variational EM + ICL) against Louvain on weighted LFR-style graphs, N = 125
(the size of Dyballa et al.'s benchmark), at several mixing levels mu = mu_t = mu_w.

Prints the mean NMI with the planted communities of each method per mixing level.
Usage: OMP_NUM_THREADS=1 python benchmarks/sbm_vs_louvain.py [--seeds 3]
"""

import argparse

import numpy as np

from neurodag.connectome.benchmark_graphs import weighted_lfr
from neurodag.connectome.sbm import fit_sbm, louvain
from neurodag.partitions import nmi


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mixing", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.6, 0.7])
    args = parser.parse_args()
    print(f"{'mu':>5}{'NMI SBM':>10}{'NMI Louvain':>13}{'true K':>8}{'SBM K':>7}")
    for mu in args.mixing:
        rows = []
        for seed in range(args.seeds):
            w, labels = weighted_lfr(mu_t=mu, mu_w=mu, seed=seed)
            fit, _ = fit_sbm(w, max_blocks=12)
            rows.append(
                (
                    nmi(labels, fit.labels),
                    nmi(labels, louvain(w, seed=seed)),
                    labels.max() + 1,
                    fit.labels.max() + 1,
                )
            )
        s, lv, k, ks = np.mean(rows, axis=0)
        print(f"{mu:>5.2f}{s:>10.3f}{lv:>13.3f}{k:>8.1f}{ks:>7.1f}")


if __name__ == "__main__":
    main()
