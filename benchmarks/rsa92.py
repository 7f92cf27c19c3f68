"""RSA on the 92-image human IT RDMs (Kriegeskorte et al., 2008) against their model RDMs.

Reads ``rsa92/92_brainRDMs.mat`` (4 subjects x 2 sessions, human IT) and ``92_modelRDMs.mat``
(animacy, face/body/man-made/natural, monkey IT, EVA, HMAX, V1, silhouette, RADON) from the shared
data folder, averages each subject's sessions, and prints each model's mean comparison with the
subjects' RDMs with a bootstrap (subjects and stimuli) 95 % interval and the noise ceiling.
The expected result (Kriegeskorte et al., 2008; Nili et al., 2014): the categorical models and
monkey IT above the low-level ones (V1, silhouette, RADON).

    python benchmarks/rsa92.py [--data DIR] [--method spearman] [--bootstrap 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from neurodag.geometry.stage import rdm_model_table

CATEGORICAL = ("animacy", "FaceBodyManmadeNatobj", "monkeyIT")
LOW_LEVEL = ("V1", "Silhouette", "RADON")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(
        os.environ.get("NEURODAG_SHARED_DATA", Path(__file__).parents[2] / "shared/data")
    )
    parser.add_argument("--data", type=Path, default=default / "rsa92")
    parser.add_argument("--method", default="spearman")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    table = rdm_model_table(
        args.data / "92_brainRDMs.mat",
        args.data / "92_modelRDMs.mat",
        method=args.method,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
    )
    elapsed = time.perf_counter() - start
    print(
        f"92-image human IT (4 subjects, sessions averaged) vs models, {args.method}, "
        f"{args.bootstrap} bootstrap samples over subjects and stimuli ({elapsed:.1f} s)"
    )
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    worst_categorical = table.loc[list(CATEGORICAL), "score"].min()
    best_low_level = table.loc[list(LOW_LEVEL), "score"].max()
    ok = worst_categorical > best_low_level
    print(
        f"categorical + monkey IT (min {worst_categorical:.3f}) above V1/silhouette/RADON "
        f"(max {best_low_level:.3f}): {'yes' if ok else 'NO'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
