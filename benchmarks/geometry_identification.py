"""Identification of regions from noisy RDMs, raw versus geo-topological (Lin & Kriegeskorte).

Simulated sessions (``neurodag.simulate.geometry``; one session per subject, same images,
different neurons and code parameters, so each region keeps its topology while its fine geometry
varies across subjects) at decreasing evoked rate (more noise). Per session and region, a
crossnobis RDM with shrinkage noise precision; regions are identified by leave-one-subject-out
nearest centroid (Spearman). Printed per noise level, as the mean over ``--draws`` independent
simulated studies: accuracy from the raw RDMs (= GT(0, 1)), from fixed topology-sensitive
settings GT(l, u) and sigmoid and geodesic GT at the same (l, u), the median over the grid, and
GT with (l, u) tuned on the training subjects only (nested leave-one-subject-out).

    python benchmarks/geometry_identification.py [--subjects 6] [--draws 4]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from neurodag.geometry import compare as cmp
from neurodag.geometry.rdm import upper
from neurodag.geometry.stage import region_rdm
from neurodag.simulate.geometry import natural_scenes, sample_responses

PARAMS = {"method": "crossnobis", "noise": "shrinkage_diag"}


def session_rdms(evoked_rate_hz, subject, repeats, neurons):
    piece = natural_scenes(
        seed=subject,
        image_seed=0,
        evoked_rate_hz=evoked_rate_hz,
        repeats=repeats,
        neurons_per_region=neurons,
    )
    responses = sample_responses(piece, seed=subject)
    patterns = responses["responses"].sum("time").values.astype(float)
    frames = responses["frame"].values
    regions = responses["region"].values
    names = list(dict.fromkeys(regions))
    return [upper(region_rdm(patterns[:, regions == r], frames, PARAMS)) for r in names], names


def study(rate, draw, args):
    """RDM vectors, region labels and subjects of one simulated study."""
    vectors, labels, subjects = [], [], []
    for subject in range(args.subjects):
        rdms, names = session_rdms(rate, 1000 * draw + subject, args.repeats, args.neurons)
        vectors += rdms
        labels += names
        subjects += [subject] * len(names)
    return np.array(vectors), labels, subjects


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--neurons", type=int, default=30)
    parser.add_argument("--rates", type=float, nargs="+", default=[30, 12, 8, 6, 4, 2])
    parser.add_argument("--low", type=float, default=0.1)
    parser.add_argument("--up", type=float, default=0.5)
    args = parser.parse_args(argv)
    grid = np.round(np.arange(0, 1.0001, 0.1), 3)
    lu = f"({args.low:g},{args.up:g})"
    print(
        f"{args.draws} studies x {args.subjects} subjects x 4 regions, {args.repeats} repeats of "
        f"32 images, {args.neurons} neurons/region; mean accuracy (chance 0.25)"
    )
    header = ("evoked Hz", "raw", f"GT{lu}", f"sigm{lu}", f"geo{lu}", "GT median", "GT tuned")
    print("{:>9} {:>6} {:>12} {:>14} {:>12} {:>10} {:>9}".format(*header))
    start = time.perf_counter()
    rows = []
    for rate in args.rates:
        scores = []
        for draw in range(args.draws):
            vectors, labels, subjects = study(rate, draw, args)
            scores.append(
                [
                    cmp.identification_accuracy(
                        vectors, labels, subjects, kind=kind, low=low, up=up
                    )
                    for kind, low, up in (
                        ("raw", 0.0, 1.0),
                        ("gt", args.low, args.up),
                        ("sigmoid", args.low, args.up),
                        ("geodesic", args.low, args.up),
                    )
                ]
                + [
                    np.nanmedian(cmp.identification_grid(vectors, labels, subjects, grid)),
                    cmp.identification_accuracy_nested(vectors, labels, subjects, grid),
                ]
            )
        row = np.mean(scores, axis=0)
        rows.append(row)
        print(
            "{:>9.1f} {:>6.2f} {:>12.2f} {:>14.2f} {:>12.2f} {:>10.2f} {:>9.2f}".format(rate, *row)
        )
    print(f"({time.perf_counter() - start:.0f} s)")
    rows = np.array(rows)
    noisy = len(rows) // 2
    print(
        f"raw accuracy at the lowest noise: {rows[0, 0]:.2f}; over the noisier half, mean raw "
        f"{rows[noisy:, 0].mean():.2f} vs GT{lu} {rows[noisy:, 1].mean():.2f}, tuned GT "
        f"{rows[noisy:, 5].mean():.2f}"
    )
    return 0 if rows[0, 0] >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
