"""Weighted SBMs against Louvain on weighted LFR-style graphs, N = 125 (the size of Dyballa et
al.'s benchmark), at several mixing levels mu = mu_t = mu_w.

Prints, per mixing level, the mean NMI with the planted communities of the degree-corrected SBM
(minimum description length, `neurodag.connectome.dcsbm`), of the Gaussian weighted SBM
(variational EM + ICL, `neurodag.connectome.sbm`) and of Louvain, the block counts, and
dDL = description length of the planted partition minus that of the one-block partition under the
degree-corrected SBM (dDL > 0: the graph's evidence does not support the planted partition over
no structure, so a model-selecting method should return one block there).
Usage: OMP_NUM_THREADS=1 python benchmarks/sbm_vs_louvain.py [--seeds 3]
"""

import argparse
import time

import numpy as np

from neurodag.connectome.benchmark_graphs import weighted_lfr
from neurodag.connectome.dcsbm import description_length, fit_dcsbm
from neurodag.connectome.sbm import fit_sbm, louvain
from neurodag.partitions import nmi


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mixing", type=float, nargs="+", default=[0.1, 0.3, 0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--no-gaussian", action="store_true", help="skip the Gaussian SBM (slow)")
    args = parser.parse_args()
    print(
        f"{'mu':>5}{'NMI DC-SBM':>12}{'NMI Gauss-SBM':>15}{'NMI Louvain':>13}"
        f"{'true K':>8}{'DC K':>6}{'Louv K':>8}{'dDL':>8}{'DC s':>7}"
    )
    for mu in args.mixing:
        rows = []
        for seed in range(args.seeds):
            w, labels = weighted_lfr(mu_t=mu, mu_w=mu, seed=seed)
            start = time.perf_counter()
            dc, _ = fit_dcsbm(w, max_blocks=12, random_state=seed)
            seconds = time.perf_counter() - start
            gauss = (
                nmi(labels, fit_sbm(w, max_blocks=12)[0].labels) if not args.no_gaussian else np.nan
            )
            lv = louvain(w, seed=seed)
            d_dl = description_length(w, labels) - description_length(w, np.zeros_like(labels))
            rows.append(
                (
                    nmi(labels, dc.labels),
                    gauss,
                    nmi(labels, lv),
                    labels.max() + 1,
                    dc.labels.max() + 1,
                    lv.max() + 1,
                    d_dl,
                    seconds,
                )
            )
        m = np.mean(rows, axis=0)
        print(
            f"{mu:>5.2f}{m[0]:>12.3f}{m[1]:>15.3f}{m[2]:>13.3f}"
            f"{m[3]:>8.1f}{m[4]:>6.1f}{m[5]:>8.1f}{m[6]:>8.1f}{m[7]:>7.1f}"
        )


if __name__ == "__main__":
    main()
