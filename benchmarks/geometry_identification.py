"""Identification of regions from noisy RDMs, raw versus geo-topological (Lin & Kriegeskorte).

Simulated sessions (``neurodag.simulate.geometry``; one session per subject, same images,
different neurons and code shape (``--jitter``), and with ``--distortion S`` each subject's own
topology-preserving distortions of every region's geometry: response nonlinearity, non-uniform
neuron sampling along the ring and the line, per-family cluster distinctiveness) at decreasing
evoked rate (more noise). Per session and region, a crossnobis RDM with shrinkage noise
precision; regions are identified by leave-one-subject-out nearest centroid (``--method``:
Spearman, or Euclidean as in the paper's code). Printed per noise level, as the mean over
``--draws`` independent simulated studies: accuracy from the raw RDMs (rank-scaled, = GT(0, 1)),
the mean over the paper's topology-sensitive settings (l >= 0.4, u <= 0.6), GT(l, u) and sigmoid
and geodesic GT at ``--low``/``--up``, the median over the grid, and with ``--tuned``, GT with
(l, u) tuned on the training subjects only (nested leave-one-subject-out). Every cell is mean +-
standard error over studies; the ``- raw`` columns are paired differences on the same RDMs, whose
standard error is what decides whether GT is more robust than raw. Last, without spiking noise:
how alike one region's true RDMs are across subjects under each transform.

    python benchmarks/geometry_identification.py [--subjects 6] [--draws 16] [--method euclidean]
        [--distortion 0] [--tuned]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from neurodag.geometry import compare as cmp
from neurodag.geometry.rdm import upper
from neurodag.geometry.stage import region_rdm
from neurodag.geometry.transforms import transform
from neurodag.simulate.geometry import natural_scenes, sample_responses

PARAMS = {"method": "crossnobis", "noise": "shrinkage_diag"}


def subject_piece(evoked_rate_hz, subject, args):
    """One subject's simulated session: same images, its own neurons and distortions."""
    return natural_scenes(
        seed=subject,
        image_seed=0,
        evoked_rate_hz=evoked_rate_hz,
        repeats=args.repeats,
        neurons_per_region=args.neurons,
        geometry_jitter=args.jitter,
        geometry_distortion=args.distortion,
    )


def session_rdms(evoked_rate_hz, subject, args):
    responses = sample_responses(subject_piece(evoked_rate_hz, subject, args), seed=subject)
    patterns = responses["responses"].sum("time").values.astype(float)
    frames = responses["frame"].values
    regions = responses["region"].values
    names = list(dict.fromkeys(regions))
    return [upper(region_rdm(patterns[:, regions == r], frames, PARAMS)) for r in names], names


def study(rate, draw, args):
    """RDM vectors, region labels and subjects of one simulated study."""
    vectors, labels, subjects = [], [], []
    for subject in range(args.subjects):
        rdms, names = session_rdms(rate, 1000 * draw + subject, args)
        vectors += rdms
        labels += names
        subjects += [subject] * len(names)
    return np.array(vectors), labels, subjects


def topology_sensitive(grid):
    """The paper's "topology-sensitive" GT settings (its code's RGTM class): l >= 0.4, u <= 0.6."""
    return [(low, up) for low in grid for up in grid if 0.4 - 1e-9 <= low <= up <= 0.6 + 1e-9]


def study_scores(rate, draw, args, grid):
    """Accuracy of every column for one simulated study (the same RDMs for every column)."""
    vectors, labels, subjects = study(rate, draw, args)

    def accuracy(kind, low=0.0, up=1.0):
        return cmp.identification_accuracy(
            vectors, labels, subjects, kind=kind, low=low, up=up, method=args.method
        )

    scores = [
        accuracy("raw"),
        # the paper averages its accuracy over settings drawn from the class; here over the grid
        np.mean([accuracy("gt", low, up) for low, up in topology_sensitive(grid)]),
        accuracy("gt", args.low, args.up),
        accuracy("sigmoid", args.low, args.up),
        accuracy("geodesic", args.low, args.up),
    ]
    full = cmp.identification_grid(vectors, labels, subjects, grid, method=args.method)
    scores.append(np.nanmedian(full))
    if args.tuned:
        scores.append(
            cmp.identification_accuracy_nested(vectors, labels, subjects, grid, method=args.method)
        )
    return scores


def noise_free_consistency(args, grid) -> None:
    """How alike one region's *noise-free* RDMs (``true_rdm``) are across subjects, per transform.

    This isolates the inter-individual variability (``--jitter``, ``--distortion``) from spiking
    noise: per study, the mean over regions and subject pairs of the correlation of transformed
    true RDMs, and the Euclidean spread of RDMs about their region's centroid over the mean
    distance between centroids (what the nearest-centroid rule needs small). Ranks do not depend
    on the evoked rate, so the first rate's pieces serve.
    """
    settings = {
        "raw": [("raw", 0.0, 1.0)],
        "GT topo-sens": [("gt", low, up) for low, up in topology_sensitive(grid)],
        f"GT({args.low:g},{args.up:g})": [("gt", args.low, args.up)],
    }
    scores = {name: [] for name in settings}
    for draw in range(args.draws):
        pieces = [subject_piece(args.rates[0], 1000 * draw + s, args) for s in range(args.subjects)]
        regions = list(pieces[0]["rdm_region"].values)
        # (subject, region, pair)
        truth = np.array([[upper(rdm) for rdm in p["true_rdm"].values] for p in pieces])
        pairs = [(i, j) for i in range(len(truth)) for j in range(i + 1, len(truth))]
        for name, cells in settings.items():
            per_cell = []
            for kind, low, up in cells:
                t = transform(truth, kind, low, up)
                # per region: mean correlation over subject pairs
                corr = [
                    np.nanmean([np.corrcoef(t[i, r], t[j, r])[0, 1] for i, j in pairs])
                    for r in range(len(regions))
                ]
                centroids = t.mean(axis=0)
                spread = np.linalg.norm(t - centroids, axis=-1).mean()
                gaps = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
                separation = gaps[np.triu_indices(len(centroids), 1)].mean()
                per_cell.append([np.mean(corr), spread / separation, *corr])
            scores[name].append(np.mean(per_cell, axis=0))
    print(
        f"noise-free true RDMs, {args.draws} studies: within-region between-subject correlation "
        f"(all regions; {', '.join(regions)}) and spread/separation, mean +- SE over studies"
    )
    for name, values in scores.items():
        values = np.array(values)
        mean, sem = values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(len(values))
        print(
            f"  {name:>13}: correlation {mean[0]:.3f}+-{sem[0]:.3f} ("
            + ", ".join(f"{m:.2f}" for m in mean[2:])
            + f"), spread/separation {mean[1]:.3f}+-{sem[1]:.3f}"
        )


def paired(diff: np.ndarray) -> str:
    """Mean +- standard error of paired differences."""
    return f"{diff.mean():+.3f}+-{diff.std(ddof=1) / np.sqrt(len(diff)):.3f}"


def grid_difference(args, grid) -> int:
    """Is any (l, u) more robust than raw? Paired GT(l, u) - raw per study, over the grid."""
    for rate in args.grid_at:
        diffs = []
        for draw in range(args.draws):
            vectors, labels, subjects = study(rate, draw, args)
            raw = cmp.identification_accuracy(
                vectors, labels, subjects, kind="raw", method=args.method
            )
            full = cmp.identification_grid(vectors, labels, subjects, grid, method=args.method)
            diffs.append(full - raw)
        diffs = np.array(diffs)
        mean = diffs.mean(axis=0)
        sem = diffs.std(axis=0, ddof=1) / np.sqrt(len(diffs))
        print(f"evoked {rate:g} Hz, {args.draws} studies, {args.method}: GT(l, u) - raw, mean (SE)")
        print("   l\\u " + " ".join(f"{u:>11.1f}" for u in grid))
        for i, low in enumerate(grid):
            cells = [
                " " * 11 if np.isnan(m) else f"{m:+.3f}({e:.3f})"
                for m, e in zip(mean[i], sem[i], strict=True)
            ]
            print(f"{low:>6.1f} " + " ".join(cells))
        best = np.unravel_index(np.nanargmax(mean), mean.shape)
        print(
            f"best cell l={grid[best[0]]:g}, u={grid[best[1]]:g}: {mean[best]:+.3f} +- "
            f"{sem[best]:.3f} (the maximum of {np.isfinite(mean).sum()} cells is biased upward)"
        )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--draws", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--neurons", type=int, default=30)
    parser.add_argument("--rates", type=float, nargs="+", default=[30, 12, 8, 6, 4, 2])
    parser.add_argument(
        "--jitter",
        type=float,
        default=1.0,
        help="geometry_jitter of the simulation: how much each region's code varies by subject",
    )
    parser.add_argument(
        "--distortion",
        type=float,
        default=0.0,
        help="geometry_distortion of the simulation: strength of each subject's topology-"
        "preserving warps (response nonlinearity, non-uniform neuron sampling); 0: none",
    )
    parser.add_argument("--low", type=float, default=0.1)
    parser.add_argument("--up", type=float, default=0.5)
    parser.add_argument(
        "--method",
        default="spearman",
        help="nearest-centroid rule: a comparator (spearman, ...) or euclidean (the paper's code)",
    )
    parser.add_argument(
        "--tuned", action="store_true", help="also GT with (l, u) tuned by nested LOSO (slow)"
    )
    parser.add_argument(
        "--grid-at",
        type=float,
        nargs="*",
        default=[],
        help="instead of the table: at these rates, the paired difference GT(l, u) - raw over "
        "the (l, u) grid, mean and standard error over studies",
    )
    parser.add_argument(
        "--truth-only",
        action="store_true",
        help="only the noise-free between-subject consistency of the true RDMs",
    )
    args = parser.parse_args(argv)
    grid = np.round(np.arange(0, 1.0001, 0.1), 3)
    if args.truth_only:
        noise_free_consistency(args, grid)
        return 0
    if args.grid_at:
        return grid_difference(args, grid)
    lu = f"({args.low:g},{args.up:g})"
    columns = ["raw", "GT topo-sens", f"GT{lu}", f"sigm{lu}", f"geo{lu}", "GT median"] + (
        ["GT tuned"] if args.tuned else []
    )
    print(
        f"{args.draws} studies x {args.subjects} subjects x 4 regions, {args.repeats} repeats of "
        f"32 images, {args.neurons} neurons/region, geometry jitter {args.jitter:g}, subject "
        f"distortion {args.distortion:g}, nearest centroid by {args.method}; mean "
        "accuracy +- standard error over studies (chance 0.25). GT topo-sens: mean over the "
        "paper's topology-sensitive settings (l >= 0.4, u <= 0.6) on the grid; diffs are paired "
        "(same RDMs)"
    )
    print(
        f"{'evoked Hz':>9} "
        + " ".join(f"{c:>13}" for c in columns)
        + f" {'topo-sens - raw':>15} {'GT' + lu + ' - raw':>16}"
    )
    start = time.perf_counter()
    per_rate = []
    for rate in args.rates:
        scores = np.array([study_scores(rate, draw, args, grid) for draw in range(args.draws)])
        per_rate.append(scores)
        sem = scores.std(axis=0, ddof=1) / np.sqrt(len(scores))
        cells = [f"{m:.3f}+-{e:.3f}" for m, e in zip(scores.mean(axis=0), sem, strict=True)]
        print(
            f"{rate:>9.1f} "
            + " ".join(f"{c:>13}" for c in cells)
            + f" {paired(scores[:, 1] - scores[:, 0]):>15}"
            + f" {paired(scores[:, 2] - scores[:, 0]):>16}"
        )
    print(f"({time.perf_counter() - start:.0f} s)")
    # The noisier half of the rates, pooled per study: paired GT - raw difference and its SE.
    noisy = np.concatenate(per_rate[len(per_rate) // 2 :])
    print(
        f"raw accuracy at the lowest noise: {per_rate[0][:, 0].mean():.3f}; over the noisier half "
        f"({len(noisy)} studies): raw {noisy[:, 0].mean():.3f}, topology-sensitive GT "
        f"{noisy[:, 1].mean():.3f} (diff {paired(noisy[:, 1] - noisy[:, 0])}), GT{lu} "
        f"{noisy[:, 2].mean():.3f} (diff {paired(noisy[:, 2] - noisy[:, 0])}), mean +- SE"
    )
    noise_free_consistency(args, grid)
    return 0 if per_rate[0][:, 0].mean() >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
