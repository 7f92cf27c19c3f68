"""Benchmark of the mds stage on the planted functional types (Burg et al. 2024 setting).

For each simulator seed, prints the model's training time and the wall time of the whole MDS loop
on CPU (one thread) for about 500 neurons, the held-out correlation, and the recovery of the
planted types: the number of clusters found (started from 5) and the adjusted Rand index of the
MDS clusters, beside that of k-means on the mean responses (given the true number of types),
measured in the same run on the same neurons. A table over the seeds ends the output.

    OMP_NUM_THREADS=1 python benchmarks/mds.py [--neurons-per-type 84] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from neurodag.mds.clustering import MDSClustering, kmeans, zscore_rows
from neurodag.mds.model import train_model
from neurodag.partitions import adjusted_rand
from neurodag.simulate.functional_types import functional_types, sample_responses


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    """Simulate, train and cluster at one seed; print the figures and return them."""
    piece = functional_types(neurons_per_type=args.neurons_per_type, seed=seed)
    data = sample_responses(piece, seed=seed + 1)
    counts = data["responses"].sel(time=slice(0.03, 0.25)).sum("time").values
    frame = data["frame"].values
    n_frames = data.sizes["frame"]
    mean = np.zeros((n_frames, counts.shape[1]))
    np.add.at(mean, frame, counts)
    mean /= np.bincount(frame, minlength=n_frames)[:, None]
    images = data["image"].values.astype(float)
    images = (images - images.mean()) / images.std()
    truth = piece["true_type"].values
    n_types = len(np.unique(truth))

    started = time.perf_counter()
    trained = train_model(images, mean, seed=seed, device=args.device)
    train_s = time.perf_counter() - started
    reliable = trained.validation_correlation >= args.min_correlation
    started = time.perf_counter()  # the loop's time includes centring the receptive fields
    clustering = MDSClustering(
        trained.model.centred(images.shape[1:]),
        images[trained.train_frames],
        seed=seed,
        device=args.device,
        include=reliable,
    )
    result = clustering.fit(5)
    mds_s = time.perf_counter() - started
    baseline = kmeans(zscore_rows(mean.T), n_types, seed=seed)
    figures = {
        "seed": seed,
        "clusters": result.stimuli.shape[0],
        "types": n_types,
        "ari": adjusted_rand(truth, result.labels),
        "ari_kmeans": adjusted_rand(truth, baseline),
        "train_s": train_s,
        "mds_s": mds_s,
    }
    print(f"--- seed {seed}")
    print(f"neurons: {len(truth)}, planted types: {n_types}, images: {n_frames}")
    print(f"device: {args.device}, torch threads: {torch.get_num_threads()}")
    print(f"model training: {train_s:.1f} s ({trained.epochs} epochs)")
    print(f"held-out correlation (test images): median {np.median(trained.test_correlation):.3f}")
    print(f"neurons forming clusters (validation r >= {args.min_correlation}): {reliable.sum()}")
    print(f"MDS loop (start 5 clusters): {mds_s:.1f} s")
    print(f"clusters found: {figures['clusters']} (truth {n_types})")
    print(f"ARI MDS clusters vs planted types: {figures['ari']:.3f}")
    print(f"ARI k-means on mean responses (reference): {figures['ari_kmeans']:.3f}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--neurons-per-type", type=int, default=84)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="simulator seeds")
    parser.add_argument("--device", default="cpu")
    # the default of stages.mds.clustering.min_correlation
    parser.add_argument("--min-correlation", type=float, default=0.7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    rows = [run_seed(seed, args) for seed in args.seeds]
    print("\nseed  clusters  types  ARI MDS  ARI k-means  train s  MDS s")
    for row in rows:
        print(
            f"{row['seed']:>4}  {row['clusters']:>8}  {row['types']:>5}  {row['ari']:>7.3f}  "
            f"{row['ari_kmeans']:>11.3f}  {row['train_s']:>7.1f}  {row['mds_s']:>5.1f}"
        )


if __name__ == "__main__":
    main()
