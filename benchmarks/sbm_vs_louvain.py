"""Weighted SBM against Louvain on weighted LFR graphs, N = 125, in Dyballa et al.'s settings.

Their benchmark notebook (dyballa/dynamic-connectomes, benchmark.ipynb) generates LFR graphs with
N = 125, average degree 25, maximum degree 100, exponents 2 (degrees) and 1 (community sizes),
strength exponent beta = 2 and mixing mu_t = mu_w = 0.5, and varies one of beta (0.5, 1, 2), the
topological mixing mu_t (0.25, 0.5, 0.75), the weight mixing mu_w (0.25, 0.75) and the average
degree (10) at a time, 10 graphs each; graphs that come out as a single community are skipped.
The SBM is the degree-corrected SBM with an exponential weight layer fitted by minimum description
length (`neurodag.connectome.dcsbm`, graph-tool's ``real-exponential`` model, which they used);
Louvain is networkx's, on the weights.

Per setting it prints the mean NMI with the planted communities of the SBM and of Louvain, the mean
block counts, and how many graphs carry evidence for their planted partition: the description
length of the planted partition minus that of one block (dDL) is negative. Where dDL > 0 the data
do not support the planted partition over no structure, and a model-selecting method returns one
block (NMI 0); the columns SBM|ev and Louv|ev are the NMIs over the graphs with evidence only.

`oracle` is not a method but the protocol of the authors' notebook, which scores each nested-SBM
fit by its hierarchy level with the highest NMI against the planted communities: here, the best NMI
over the SBM's fits at 2..8 blocks. It bounds what choosing the block count by the truth would add.
Usage: OMP_NUM_THREADS=1 python benchmarks/sbm_vs_louvain.py [--graphs 10] [--gaussian]
"""

import argparse
import time

import numpy as np

from neurodag.connectome.benchmark_graphs import weighted_lfr
from neurodag.connectome.dcsbm import description_length, fit_dcsbm, fit_dcsbm_fixed_k
from neurodag.connectome.sbm import fit_sbm, louvain
from neurodag.partitions import nmi

# (name, weighted_lfr arguments that differ from the base graph)
SETTINGS = [
    ("base (mu_t = mu_w = 0.5, beta 2)", {}),
    ("beta 0.5", {"beta": 0.5}),
    ("beta 1", {"beta": 1.0}),
    ("mu_t 0.25", {"mu_t": 0.25}),
    ("mu_t 0.75", {"mu_t": 0.75}),
    ("mu_w 0.25", {"mu_w": 0.25}),
    ("mu_w 0.75", {"mu_w": 0.75}),
    ("average degree 10", {"average_degree": 10}),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--graphs", type=int, default=10, help="graphs per setting")
    parser.add_argument("--gaussian", action="store_true", help="also the Gaussian SBM (slow)")
    args = parser.parse_args()
    header = (
        f"{'setting':<34}{'SBM':>7}{'Louvain':>9}{'Gauss':>7}{'K':>6}{'SBM K':>7}{'Louv K':>8}"
        f"{'evidence':>10}{'SBM|ev':>8}{'Louv|ev':>9}{'oracle':>8}{'SBM s':>7}"
    )
    print("NMI with the planted communities, mean over graphs", flush=True)
    print(header, flush=True)
    wins = oracle_wins = 0
    for name, setting in SETTINGS:
        rows = []
        for seed in range(args.graphs):
            w, labels = weighted_lfr(seed=seed, **setting)
            if labels.max() == 0:
                continue
            start = time.perf_counter()
            sbm, _ = fit_dcsbm(w, max_blocks=10, random_state=seed)
            seconds = time.perf_counter() - start
            lv = louvain(w, seed=seed)
            gauss = nmi(labels, fit_sbm(w, max_blocks=10)[0].labels) if args.gaussian else np.nan
            d_dl = description_length(w, labels) - description_length(w, np.zeros_like(labels))
            oracle = max(
                nmi(labels, fit_dcsbm_fixed_k(w, k, random_state=seed + k)[0]) for k in range(2, 9)
            )
            rows.append(
                (
                    nmi(labels, sbm.labels),
                    nmi(labels, lv),
                    gauss,
                    labels.max() + 1,
                    sbm.labels.max() + 1,
                    lv.max() + 1,
                    d_dl < 0,
                    seconds,
                    oracle,
                )
            )
        r = np.array(rows, dtype=float)
        ev = r[:, 6] > 0
        m = r.mean(0)
        sbm_ev = r[ev, 0].mean() if ev.any() else np.nan
        louv_ev = r[ev, 1].mean() if ev.any() else np.nan
        wins += m[0] > m[1]
        oracle_wins += m[8] > m[1]
        evidence = f"{int(ev.sum())}/{len(r)}"
        print(
            f"{name:<34}{m[0]:>7.3f}{m[1]:>9.3f}{m[2]:>7.3f}{m[3]:>6.1f}{m[4]:>7.1f}{m[5]:>8.1f}"
            f"{evidence:>10}{sbm_ev:>8.3f}{louv_ev:>9.3f}{m[8]:>8.3f}{np.median(r[:, 7]):>7.1f}",
            flush=True,
        )
    n_settings = len(SETTINGS)
    print(f"SBM NMI above Louvain's in {wins} of {n_settings} settings")
    print(f"oracle (blocks chosen by the truth) above Louvain's in {oracle_wins} of {n_settings}")


if __name__ == "__main__":
    main()
