"""The mds stage: ingest trial responses -> predictive model -> MDS clusters (Burg et al. 2024).

Reads one or more ingest files ``responses(trial, neuron, time)`` with trial variable ``frame`` and
``image(frame, y, x)`` with ``image_frame(frame)`` (the frame index of each image; the dataset's
``images:`` option; all files must show the same images), keeps the neurons of the configured
regions, sums each trial's counts over the response window, averages over the presentations of
each image shown (blank presentations, frame -1, are not images and are left out, as AllenSDK's
``NaturalScenes.images_nonblank``), fits :mod:`neurodag.mds.model`, and clusters with
:mod:`neurodag.mds.clustering`.

Output variables: ``cluster(neuron)``, ``mds(cluster_id, y, x)`` (stimuli in the input's pixel
units; the dimension is ``cluster_id`` because ``cluster`` names the assignment),
``mds_response(cluster_id, neuron)`` (each neuron's normalised, shift-tolerant predicted response
to each MDS; its cluster is the argmax),
``objective(step)`` with ``objective_clusters(step)`` and ``objective_step(step)``,
``held_out_correlation(neuron)`` (test images), ``readout_position(neuron, axis)`` (pixels, learned
before centring), ``mean_response(frame, neuron)`` (``frame`` = the images' frame indices) and,
when a truth file with ``true_type(neuron)`` is given, scalar ``validation_*`` variables: the
adjusted Rand index against the planted types and that of k-means on mean responses, and the
number of clusters found beside the number of planted types.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurodag.compute import Compute
from neurodag.errors import InputError
from neurodag.stages import Inputs, Output, Params, Spec

log = logging.getLogger(__name__)


def load_responses(paths: list[Path], params: dict[str, Any]):
    """Images (frame, y, x) and mean windowed counts (frame, neuron) over the images shown (blank
    presentations, frame -1, are left out), with neuron ids/regions and the images' frame
    indices."""
    from neurodag.io.responses import read_spiking
    from neurodag.io.stimulus_images import image_index, image_rows

    images, index, blocks, neurons, regions = None, None, [], [], []
    for path in paths:
        ds = read_spiking(
            path,
            "responses",
            ("trial", "neuron", "time"),
            regions=params["regions"],
            require=("frame", "region"),
            key="stages.mds",
        )
        if "image" not in ds:
            stimulus = ds.attrs.get("stimulus_name", params["stimulus"])
            raise InputError(
                path,
                "image",
                f"missing: the mds stage needs the images of {stimulus} (session files carry "
                "none); give them with the dataset's images: option "
                f"(datasets.<dataset>.images.{stimulus}: a folder of images named by frame index, "
                "or a stack file)",
            )
        rows = image_rows(ds, ds["frame"].values, path)
        frame_index = image_index(ds)
        shown = np.bincount(rows[rows >= 0], minlength=ds.sizes["frame"]) > 0
        if not shown.any():
            raise InputError(path, "frame", "no presentation shows an image")
        if images is None:
            images, index = ds["image"].values[shown].astype(float), frame_index[shown]
            log.info(
                "mds: %d images shown; %d blank presentations (frame -1) left out",
                len(images),
                int((rows < 0).sum()),
            )
        elif (
            not np.array_equal(frame_index[shown], index)
            or ds["image"].shape[1:] != images.shape[1:]
            or not np.allclose(ds["image"].values[shown], images)
        ):
            raise InputError(path, "image", "differs from the first file's images")
        responses = ds["responses"]
        window = params["window_s"]
        if window:
            responses = responses.sel(time=slice(window[0], window[1]))
        counts = responses.sum("time").values.astype(float)  # trial, neuron
        kept = rows >= 0
        row = np.cumsum(shown)[rows[kept]] - 1  # row among the shown images
        mean = np.zeros((len(images), counts.shape[1]))
        np.add.at(mean, row, counts[kept])
        blocks.append(mean / np.bincount(row, minlength=len(images))[:, None])
        ids = ds["neuron"].values.astype(str)
        if len(paths) > 1:
            ids = np.array([f"{Path(path).parent.name}/{i}" for i in ids])
        neurons += list(ids)
        regions += list(ds["region"].values.astype(str))
    responses = np.concatenate(blocks, axis=1)
    if responses.shape[1] == 0:
        raise InputError(paths[0], "region", f"no neurons in regions {params['regions']}")
    return images, responses, np.array(neurons), np.array(regions), index


def downsample(images: np.ndarray, max_size: int) -> np.ndarray:
    """Block-average images whose longer side exceeds ``max_size`` pixels."""
    factor = int(np.ceil(max(images.shape[1:]) / max_size))
    if factor <= 1:
        return images
    h, w = (images.shape[1] // factor) * factor, (images.shape[2] // factor) * factor
    cropped = images[:, :h, :w]
    return cropped.reshape(len(images), h // factor, factor, w // factor, factor).mean(axis=(2, 4))


def run(
    inputs: Inputs, params: Params, *, compute: Compute, dataset: Spec = None, output: Output = None
) -> xr.Dataset:
    """Model and MDS clusters of the image responses of ``inputs["responses"]`` (recordings)."""
    import torch

    from neurodag.mds.clustering import MDSClustering
    from neurodag.mds.model import train_model

    seed = params["seed"]
    torch.manual_seed(seed)
    paths = [Path(p) for p in inputs["responses"]]
    dev = compute.torch_device()
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True)
    images, responses, neurons, regions, frames = load_responses(paths, params)
    rates = responses.mean(axis=0) / _window_length(params, paths[0])
    active = rates >= params["min_rate_hz"]
    if not np.any(active):
        raise InputError(paths[0], "responses", "no neuron reaches stages.mds.min_rate_hz")
    log.info(
        "mds: %d of %d neurons above %.2f Hz", active.sum(), len(active), params["min_rate_hz"]
    )
    responses, neurons, regions = responses[:, active], neurons[active], regions[active]
    pixels = downsample(images, params["max_image_size"])
    mean, sd = pixels.mean(), max(pixels.std(), 1e-12)
    normalised = (pixels - mean) / sd
    model_params = params["model"]
    trained = train_model(normalised, responses, seed=seed, device=dev, **model_params)
    log.info(
        "mds: held-out correlation median %.3f (%d test images)",
        np.median(trained.test_correlation),
        len(trained.test_frames),
    )
    mds_params = params["clustering"]
    reliable = trained.validation_correlation >= mds_params["min_correlation"]
    if not reliable.any():
        log.warning(
            "mds: no neuron reaches min_correlation %.2f; clustering all of them",
            mds_params["min_correlation"],
        )
        reliable[:] = True
    log.info("mds: %d of %d neurons form the clusters", reliable.sum(), len(reliable))
    clustering = MDSClustering(
        trained.model.centred(normalised.shape[1:]),
        normalised[trained.train_frames],
        tau=params["tau"],
        seed=seed,
        device=dev,
        include=reliable,
        **{k: v for k, v in mds_params.items() if k not in ("initial_clusters", "min_correlation")},
    )
    result = clustering.fit(mds_params["initial_clusters"])

    height, width = normalised.shape[1:]
    position = trained.model.position.detach().cpu().numpy()
    n_clusters = result.stimuli.shape[0]
    out = xr.Dataset(
        {
            "cluster": ("neuron", result.labels.astype(np.int64)),
            "mds": (("cluster_id", "y", "x"), result.stimuli * sd + mean),
            "mds_response": (("cluster_id", "neuron"), result.responses),
            "objective": ("step", np.asarray(result.objective)),
            "objective_clusters": ("step", np.asarray(result.objective_clusters)),
            "objective_step": ("step", np.asarray(result.objective_step, dtype=str)),
            "held_out_correlation": ("neuron", trained.test_correlation),
            "readout_position": (
                ("neuron", "axis"),
                np.stack(
                    [
                        (position[:, 1] + 1) / 2 * (height - 1),
                        (position[:, 0] + 1) / 2 * (width - 1),
                    ],
                    axis=1,
                ),
            ),
            "mean_response": (("frame", "neuron"), responses),
        },
        coords={
            "neuron": neurons,
            "region": ("neuron", regions),
            "cluster_id": np.arange(n_clusters),
            "step": np.arange(len(result.objective)),
            "axis": ["y", "x"],
            "frame": frames,
        },
    )
    out["mds"].attrs["description"] = "most discriminative stimulus of each cluster, pixel units"
    out["mds_response"].attrs["description"] = (
        "predicted response (readout centred, best offset within shift_tolerance_px) / the "
        "neuron's largest response to a training image; each neuron's cluster is its argmax"
    )
    out["objective"].attrs["description"] = "-sum_k (n_k / N) L_k after each MDS optimisation"
    out["held_out_correlation"].attrs["description"] = (
        "Pearson r of predicted vs observed mean response over held-out test images"
    )
    out["mean_response"].attrs["description"] = "windowed spike count, mean over presentations"
    out.attrs.update(
        {
            "n_clusters": n_clusters,
            "final_objective": result.final_objective,
            "held_out_correlation_median": float(np.median(trained.test_correlation)),
            "model_epochs": trained.epochs,
            "model_seconds": trained.seconds,
            "mds_seconds": result.seconds,
            "n_clustered_neurons": int(reliable.sum()),
            "device": str(dev),
            "stimulus_name": params["stimulus"],
        }
    )
    return out


def _window_length(params: dict[str, Any], path: Path) -> float:
    from neurodag.io.netcdf import open_dataset

    ds = open_dataset(path)
    window = params["window_s"]
    time = ds["time"].values
    if window:
        time = time[(time >= window[0]) & (time <= window[1])]
    bin_size = float(ds.attrs.get("bin_size_s", np.median(np.diff(ds["time"].values))))
    return max(len(time) * bin_size, 1e-12)


def validate(out: xr.Dataset, truth_path: Path | None) -> xr.Dataset:
    """ARI of the clusters and of k-means on mean responses against ``true_type(neuron)``.

    Also the number of clusters found beside the number of planted types; k-means is given the
    true number.
    """
    if truth_path is None:  # recorded data: nothing planted to recover
        return xr.Dataset()
    from neurodag.mds.clustering import kmeans, zscore_rows
    from neurodag.partitions import adjusted_rand as ari
    from neurodag.validation import open_truth

    try:
        truth = open_truth(truth_path, "true_type", out.attrs.get("stimulus_name"))
    except InputError as exc:
        log.warning("mds: no validation (%s)", exc)
        return xr.Dataset()
    true_type = truth["true_type"].to_series().astype(str)
    ids = [n.split("/")[-1] for n in out["neuron"].values]
    known = np.array([i in true_type.index for i in ids])
    if not known.any():
        log.warning("mds: no neuron of the output is in %s; no validation", truth_path)
        return xr.Dataset()
    labels = true_type.loc[np.array(ids)[known]].values
    found = out["cluster"].values[known]
    n_true = len(np.unique(labels))
    baseline = kmeans(zscore_rows(out["mean_response"].values[:, known].T), n_true, seed=0)
    scores = {
        "validation_ari": ari(labels, found),
        "validation_ari_kmeans_mean_response": ari(labels, baseline),
        "validation_n_clusters": int(out.sizes["cluster_id"]),
        "validation_n_true_types": n_true,
        "validation_n_neurons": int(known.sum()),
    }
    log.info("mds validation: %s", scores)
    descriptions = {
        "validation_ari": "adjusted Rand index of the MDS clusters against the planted types",
        "validation_ari_kmeans_mean_response": (
            "ARI of k-means on z-scored mean responses, given the true number of types"
        ),
        "validation_n_clusters": "clusters the MDS found (compare n_true_types)",
        "validation_n_true_types": "planted functional types",
        "validation_n_neurons": "neurons with a planted type",
    }
    return xr.Dataset(
        {
            name: xr.DataArray(value, attrs={"description": descriptions[name]})
            for name, value in scores.items()
        }
    )


def figures(out: xr.Dataset, stem: Path) -> list[Path]:
    """Each cluster's MDS (top) and its members' predicted responses to every MDS (bottom)."""
    from neurodag.plotting import CATEGORICAL, figure, save_figure

    k = out.sizes["cluster_id"]
    fig, axes = figure(2, k, width=max(6.4, 1.3 * k), height=3.6, squeeze=False)
    lim = np.abs(out["mds"].values - 127.5).max()
    colours = __import__("matplotlib").colormaps[CATEGORICAL]
    for c in range(k):
        ax = axes[0, c]
        ax.imshow(out["mds"].values[c], cmap="gray", vmin=127.5 - lim, vmax=127.5 + lim)
        members = out["cluster"].values == c
        ax.set_title(f"cluster {c}\n({members.sum()} neurons)")
        ax.set_xticks([])
        ax.set_yticks([])
        ax = axes[1, c]
        response = out["mds_response"].values[:, members]  # stimulus, member
        for j in range(k):
            ax.plot(
                np.full(response.shape[1], j) + np.linspace(-0.2, 0.2, response.shape[1]),
                response[j],
                ".",
                ms=2,
                color=colours(j % 10) if j == c else "0.6",
            )
        ax.set_xticks(range(k))
        ax.set_xlabel("MDS of cluster")
        if c == 0:
            ax.set_ylabel("predicted response\n(x best image)")
    fig.suptitle("Most discriminative stimuli and members' predicted responses")
    return [save_figure(fig, stem.with_name(stem.name + ".mds.png"))]
