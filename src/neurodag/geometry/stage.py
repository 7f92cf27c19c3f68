"""The geometry stage: RDMs, topological RSA and population geometry of one dataset.

Two inputs (Lin & Kriegeskorte, "The Topology and Geometry of Neural Representations", PNAS 2024):

- trial responses (the Allen ingest's ``{stimulus}.nc``, ``responses(trial, neuron, time)`` with
  ``frame(trial)`` and ``region(neuron)``): per region, a crossnobis (or other) RDM over frames
  with shrinkage noise precision; pseudo-subjects from disjoint random neuron splits give the
  RDMs for (l, u)-grid identification of regions and for model comparison against image models
  (pixel and luminance RDMs of ``image(frame, y, x)``, found by ``image_frame``) and the other
  regions' RDMs; the blank (frame -1) is a condition of its own in the RDMs and identification,
  and, having no image, is left out of the model comparison; participation
  ratio, linear CKA between regions, and parallelism score / CCGP when factors are named;
- RDM files (``kind: rdm``, e.g. ``format: rdm-mat``): the subjects' RDMs (sessions averaged)
  compared with model RDMs from the dataset's ``models`` file, with bootstrap over subjects and
  stimuli and the noise ceiling.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurodag.compute import Compute
from neurodag.errors import ConfigError, InputError
from neurodag.geometry import compare as cmp
from neurodag.geometry import population
from neurodag.geometry.rdm import (
    _distances_from_gram,
    calc_rdm,
    noise_precision,
    residuals,
    square,
    upper,
)
from neurodag.geometry.transforms import transform
from neurodag.io.stimulus_images import image_rows
from neurodag.stages import Inputs, Output, Params, Spec

log = logging.getLogger(__name__)
KINDS = ("raw", "gt", "sigmoid", "geodesic")


def _grid(step: float) -> np.ndarray:
    return np.round(np.arange(0.0, 1.0 + 1e-9, step), 10)


def _summary(result: dict, names: list[str]) -> dict[str, tuple]:
    boot = result["bootstrap"]
    return {
        "score": (("model",), result["score"]),
        "score_sem": (("model",), np.nanstd(boot, axis=0, ddof=1)),
        "score_ci_low": (("model",), np.nanpercentile(boot, 2.5, axis=0)),
        "score_ci_high": (("model",), np.nanpercentile(boot, 97.5, axis=0)),
        "ceiling_lower": ((), result["ceiling_lower"]),
        "ceiling_upper": ((), result["ceiling_upper"]),
    }


# ---------------------------------------------------------------- RDM datasets


def _subject_means(rdms: xr.Dataset) -> tuple[np.ndarray, list[str]]:
    """Subjects' RDM vectors, sessions averaged."""
    subjects = list(dict.fromkeys(rdms["subject"].values.tolist()))
    vectors = upper(rdms["rdm"].values)
    subject = rdms["subject"].values
    return np.stack([vectors[subject == s].mean(axis=0) for s in subjects]), subjects


def rdm_model_table(
    data_path, models_path, *, method="spearman", n_bootstrap=200, seed=0, variable=None
):
    """Model comparison table (pandas) of RDM files: score, bootstrap SEM and 95 % interval."""
    import pandas as pd

    from neurodag.io.rdm_mat import read_rdm_mat

    data = read_rdm_mat(data_path, variable)
    models = read_rdm_mat(models_path)
    vectors, _ = _subject_means(data)
    result = cmp.evaluate_models(
        vectors, upper(models["rdm"].values), method, n_bootstrap=n_bootstrap, seed=seed
    )
    summary = _summary(result, models["name"].values.tolist())
    table = pd.DataFrame(
        {key: value for key, (dims, value) in summary.items() if dims == ("model",)},
        index=pd.Index(models["name"].values, name="model"),
    ).sort_values("score", ascending=False)
    ceiling = pd.DataFrame(
        {"score": [result["ceiling_lower"], result["ceiling_upper"]]},
        index=pd.Index(["noise ceiling (lower)", "noise ceiling (upper)"], name="model"),
    )
    table = pd.concat([table, ceiling])
    table.attrs["ceiling"] = (float(result["ceiling_lower"]), float(result["ceiling_upper"]))
    return table


def geometry_from_rdms(spec: Mapping[str, Any], params: Mapping[str, Any]) -> xr.Dataset:
    from neurodag.io.rdm_mat import read_rdm_mat

    if spec["format"] != "rdm-mat":
        raise InputError(spec.get("path"), "format", f"unsupported RDM format {spec['format']}")
    data = read_rdm_mat(spec["path"], spec.get("variable"))
    vectors, subjects = _subject_means(data)
    out = xr.Dataset(
        {
            "rdm": (("entry", "stimulus", "stimulus2"), data["rdm"].values),
            "rdm_gt": (
                ("entry", "stimulus", "stimulus2"),
                square(transform(upper(data["rdm"].values), "gt", *params["gt_example"])),
            ),
        },
        coords={
            "name": ("entry", data["name"].values),
            "subject": ("entry", data["subject"].values),
            "session": ("entry", data["session"].values),
        },
    )
    if spec.get("models"):
        models = read_rdm_mat(spec["models"])
        if models.sizes["stimulus"] != data.sizes["stimulus"]:
            raise InputError(spec["models"], "RDM", "models and data have different stimuli")
        result = cmp.evaluate_models(
            vectors,
            upper(models["rdm"].values),
            params["comparator"],
            n_bootstrap=params["n_bootstrap"],
            seed=params["seed"],
        )
        out = out.assign(_summary(result, models["name"].values.tolist()))
        out = out.assign(
            model_rdm=(("model", "stimulus", "stimulus2"), models["rdm"].values),
            bootstrap=(("sample", "model"), result["bootstrap"]),
        ).assign_coords(model=models["name"].values)
    out.attrs["comparator"] = params["comparator"]
    out.attrs["subjects"] = ",".join(subjects)
    return out


# ---------------------------------------------------------------- trial responses


def _trial_patterns(responses: xr.Dataset, window_s) -> np.ndarray:
    counts = responses["responses"]
    if window_s is not None:
        counts = counts.sel(time=slice(*window_s))
        if counts.sizes["time"] == 0:
            raise InputError(None, "stages.geometry.window_s", f"no bins in {window_s}")
    return counts.sum("time").transpose("trial", "neuron").values.astype(float)


def _folds(frames: np.ndarray) -> np.ndarray:
    """The k-th presentation of each frame goes to fold k (balanced cross-validation folds)."""
    folds = np.zeros(len(frames), dtype=int)
    for frame in np.unique(frames):
        where = np.flatnonzero(frames == frame)
        folds[where] = np.arange(len(where))
    return folds


def region_rdm(patterns, frames, params) -> np.ndarray:
    """One region's RDM over frames with the stage's method and noise precision."""
    folds = _folds(frames)
    # keep only complete folds, so that every frame occurs in every fold
    per_frame = np.bincount(np.unique(frames, return_inverse=True)[1])
    keep = folds < per_frame.min()
    patterns, frames, folds = patterns[keep], frames[keep], folds[keep]
    precision = None
    if params["method"] in ("mahalanobis", "crossnobis") and params["noise"] != "none":
        res, dof = residuals(patterns, frames)
        precision = noise_precision(res, dof, params["noise"])
    rdm, _ = calc_rdm(patterns, frames, params["method"], precision=precision, folds=folds)
    return rdm


def image_model_rdms(image: np.ndarray) -> dict[str, np.ndarray]:
    """Low-level model RDMs of the stimuli: pixel pattern (squared Euclidean distance after
    removing each image's mean, so it is not the luminance model again) and mean luminance.

    The pixel RDM is ``calc_rdm(pixels, frames, "euclidean", remove_mean=True)`` computed from
    the Gram matrix in blocks of pixels, so full-size images (a real session's 118 natural scenes
    of 918 x 1174 uint8 pixels) never exist as one float copy."""
    flat = image.reshape(len(image), -1)
    luminance = flat.mean(axis=1, dtype=np.float64)
    gram = np.zeros((len(flat), len(flat)))
    step = max(1, 2**22 // max(len(flat), 1))  # pixels per block: about 32 MB of float64
    for start in range(0, flat.shape[1], step):
        block = flat[:, start : start + step].astype(np.float64) - luminance[:, None]
        gram += block @ block.T
    return {
        "pixels": _distances_from_gram(gram) / flat.shape[1],
        "luminance": np.abs(luminance[:, None] - luminance[None, :]),
    }


def _read_responses(path: Path, params: dict) -> dict:
    from neurodag.io.responses import read_spiking

    responses = read_spiking(
        path,
        "responses",
        ("trial", "neuron", "time"),
        regions=params["regions"],
        require=("frame", "region"),
        key="stages.geometry",
    )
    shown, per_frame = np.unique(responses["frame"].values, return_counts=True)
    if per_frame.min() < 2 and params["method"] in ("mahalanobis", "crossnobis"):
        raise InputError(
            path,
            "frame",
            f"condition(s) {shown[per_frame < 2].tolist()[:10]} shown only once; "
            f"stages.geometry.method {params['method']} needs at least two presentations of "
            "every condition (for its noise residuals and cross-validation folds)",
        )
    return {
        "dataset": responses,
        "frames": responses["frame"].values,
        "patterns": _trial_patterns(responses, params["window_s"]),
        "region_of": responses["region"].values.astype(str),
    }


def geometry_from_responses(paths, params: dict) -> xr.Dataset:
    """Geometry of one or more recordings' trial responses to the same frames."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    recordings = [_read_responses(p, params) for p in paths]
    unique_frames = np.unique(recordings[0]["frames"])
    for path, rec in zip(paths, recordings, strict=True):
        if not np.array_equal(np.unique(rec["frames"]), unique_frames):
            raise InputError(path, "frame", f"frames differ from those of {paths[0]}")
    enough = {
        r
        for rec in recordings
        for r in np.unique(rec["region_of"])
        if (rec["region_of"] == r).sum() >= params["min_neurons"]
    }
    regions = [r for r in dict.fromkeys(np.concatenate([rec["region_of"] for rec in recordings]))]
    regions = [r for r in (params["regions"] or regions) if r in enough]
    if len(regions) == 0:
        raise InputError(paths[0], "region", f"no region with >= {params['min_neurons']} neurons")
    rng = np.random.default_rng(params["seed"])

    rdms, split_vectors, split_labels, split_subjects, means = [], [], [], [], {}
    for region in regions:
        per_recording, region_means = [], []
        for index, rec in enumerate(recordings):
            columns = np.flatnonzero(rec["region_of"] == region)
            if len(columns) < params["min_neurons"]:
                continue
            patterns, frames = rec["patterns"], rec["frames"]
            rdm = region_rdm(patterns[:, columns], frames, params)
            per_recording.append(rdm)
            region_means.append(
                np.stack([patterns[frames == f][:, columns].mean(0) for f in unique_frames])
            )
            if len(recordings) > 1:  # recordings are the subjects
                split_vectors.append(upper(rdm))
                split_labels.append(region)
                split_subjects.append(index)
                continue
            # One recording: pseudo-subjects are disjoint random neuron subsets of the region.
            subsets = np.array_split(rng.permutation(columns), params["splits"])
            for split, subset in enumerate(subsets):
                split_vectors.append(upper(region_rdm(patterns[:, subset], frames, params)))
                split_labels.append(region)
                split_subjects.append(split)
        rdms.append(np.mean(per_recording, axis=0))
        means[region] = np.concatenate(region_means, axis=1)  # pseudo-population
    rdms = np.stack(rdms)
    split_vectors = np.stack(split_vectors)
    grid = _grid(params["grid_step"])
    identification = np.stack(
        [
            cmp.identification_grid(
                split_vectors,
                split_labels,
                split_subjects,
                grid,
                kind=kind,
                method=params["identify_by"],
            )
            for kind in KINDS
        ]
    )
    out = xr.Dataset(
        {
            "rdm": (("region", "frame", "frame2"), rdms),
            "rdm_gt": (
                ("region", "frame", "frame2"),
                square(transform(upper(rdms), "gt", *params["gt_example"])),
            ),
            "split_rdm": (("split", "frame", "frame2"), square(split_vectors)),
            "identification": (("transform", "low", "up"), identification),
            "participation_ratio": (
                ("region",),
                [population.participation_ratio(means[r]) for r in regions],
            ),
            "cka": (
                ("region", "region2"),
                [[population.linear_cka(means[a], means[b]) for b in regions] for a in regions],
            ),
            "rdm_similarity": (
                ("region", "region2"),
                cmp.compare(upper(rdms)[:, None], upper(rdms)[None], params["comparator"]),
            ),
        },
        coords={
            "region": regions,
            "region2": regions,
            "frame": unique_frames,
            "frame2": unique_frames,
            "split_region": ("split", split_labels),
            "split_subject": ("split", split_subjects),
            "transform": list(KINDS),
            "low": grid,
            "up": grid,
        },
    )
    # Model comparison: each region's pseudo-subject RDMs against image models and the other
    # regions' RDMs, with bootstrap over pseudo-subjects and frames. Image models describe the
    # image frames only: with a blank condition (frame -1, no image) the comparison runs over the
    # image frames, and the image models' blank rows are NaN.
    models = {}
    responses = recordings[0]["dataset"]
    compared = np.ones(len(unique_frames), dtype=bool)
    if "image" in responses:
        rows = image_rows(responses, unique_frames, paths[0])
        compared = rows >= 0
        for name, rdm in image_model_rdms(responses["image"].values[rows[compared]]).items():
            models[name] = np.full((len(unique_frames),) * 2, np.nan)
            models[name][np.ix_(compared, compared)] = rdm
        if not compared.all():
            log.info("geometry: image models compared over the %d image frames", compared.sum())
    else:
        log.info("geometry: no image(frame, y, x) (dataset option images:), no image models")
    models.update({f"region {r}": rdms[k] for k, r in enumerate(regions)})
    model_vectors = upper(np.stack(list(models.values()))[:, compared][:, :, compared])
    split_compared = upper(square(split_vectors)[:, compared][:, :, compared])
    scores = {key: [] for key in ("score", "score_sem", "score_ci_low", "score_ci_high")}
    ceilings = []
    for region in regions:
        data = split_compared[np.asarray(split_labels) == region]
        result = cmp.evaluate_models(
            data,
            model_vectors,
            params["comparator"],
            n_bootstrap=params["n_bootstrap"],
            seed=params["seed"],
        )
        summary = _summary(result, list(models))
        for key in scores:
            scores[key].append(summary[key][1])
        ceilings.append([result["ceiling_lower"], result["ceiling_upper"]])
    out = (
        out.assign({key: (("region", "model"), np.array(value)) for key, value in scores.items()})
        .assign(
            noise_ceiling=(("region", "bound"), np.array(ceilings)),
            model_rdm=(("model", "frame", "frame2"), np.stack(list(models.values()))),
        )
        .assign_coords(model=list(models), bound=["lower", "upper"])
    )
    out["model_rdm"].attrs["description"] = (
        "model RDMs over frames; image models are NaN at the blank (-1), and the model "
        "comparison runs over the frames every model defines"
    )
    factors = params["factors"]
    if factors:
        missing = [f for f in factors if f not in responses]
        if missing:
            raise InputError(paths[0], missing[0], "factor in stages.geometry.factors is missing")
        parallelism, generalisation = [], []
        frames, patterns = recordings[0]["frames"], recordings[0]["patterns"]
        region_of = recordings[0]["region_of"]
        for region in regions:
            columns = np.flatnonzero(region_of == region)
            per_frame = {f: responses[f].values for f in factors}
            a, b = per_frame[factors[0]], per_frame[factors[1]]
            frame_a = np.array([a[frames == f][0] for f in unique_frames])
            frame_b = np.array([b[frames == f][0] for f in unique_frames])
            parallelism.append(population.parallelism_score(means[region], frame_a, frame_b))
            generalisation.append(population.ccgp(patterns[:, columns], a, b))
        out = out.assign(
            parallelism_score=(("region",), parallelism), ccgp=(("region",), generalisation)
        )
        out.attrs["factors"] = ",".join(factors)
    out.attrs.update(
        method=params["method"],
        noise=params["noise"],
        comparator=params["comparator"],
        identify_by=params["identify_by"],
        gt_example=list(params["gt_example"]),
    )
    return out


def run(
    inputs: Inputs, params: Params, *, compute: Compute, dataset: Spec = None, output: Output = None
) -> xr.Dataset:
    """Geometry of a kind rdm dataset (its files, from ``dataset``) or of the trial responses in
    ``inputs["responses"]`` (one file per recording)."""
    if dataset is not None and dataset["kind"] == "rdm":
        return geometry_from_rdms(dataset, params)
    if not inputs.get("responses"):
        raise ConfigError("geometry of trial responses needs --input responses files")
    return geometry_from_responses(inputs["responses"], params)


def validate(result: xr.Dataset, truth: Path | None = None) -> xr.Dataset:
    """The region each (pseudo-)subject RDM came from is known, so identifying it is this stage's
    ground-truth recovery figure, for the raw RDM and each transform at the stored example
    (l, u); it needs no truth file. RDM datasets have no such figure."""
    if "split_rdm" not in result:
        return xr.Dataset()
    vectors = upper(result["split_rdm"].values)
    labels = list(result["split_region"].values.astype(str))
    subjects = list(result["split_subject"].values)
    low, up = result.attrs["gt_example"]
    accuracy = [
        cmp.identification_accuracy(
            vectors,
            labels,
            subjects,
            kind=kind,
            low=low,
            up=up,
            method=result.attrs["identify_by"],
        )
        for kind in KINDS
    ]
    out = xr.Dataset(
        {"validation_identification_accuracy": (("transform",), accuracy)},
        coords={"transform": list(KINDS)},
    )
    out["validation_identification_accuracy"].attrs["description"] = (
        f"leave-one-subject-out nearest-centroid ({result.attrs['identify_by']}) identification "
        f"of the region of each (pseudo-)subject RDM, chance {1 / result.sizes['region']:.2f}; "
        f"raw RDM, and GT/sigmoid/geodesic at (l, u) = {(low, up)}"
    )
    return out


# ---------------------------------------------------------------- figures


def figures(ds: xr.Dataset, prefix: Path) -> list[Path]:
    """RDMs, GT-transformed RDMs, model comparison (and identification grid) beside the output."""
    from neurodag.plotting import CATEGORICAL, SEQUENTIAL, figure, save_figure

    prefix = Path(prefix)
    written = []
    first_dim = "region" if "region" in ds["rdm"].dims else "entry"
    labels = (ds["region"].values if first_dim == "region" else ds["name"].values).astype(str)[:8]
    for variable, title in (("rdm", "RDM"), ("rdm_gt", "GT-transformed RDM")):
        n = len(labels)
        fig, axes = figure(1, n, width=2.2 * n, height=2.5, squeeze=False)
        for k, ax in enumerate(axes[0]):
            values = ds[variable].isel({first_dim: k}).values
            image = ax.imshow(values, cmap=SEQUENTIAL)
            ax.set_title(labels[k], fontsize=8)
            ax.set_xlabel("stimulus")
            ax.set_ylabel("stimulus")
            label = f"{ds.attrs.get('method', '')} dissimilarity".strip()
            if variable == "rdm_gt":
                label = "GT (0 = near, 1 = far)"
            fig.colorbar(image, ax=ax, shrink=0.7, label=label if k == n - 1 else None)
        fig.suptitle(title)
        written.append(save_figure(fig, prefix.with_name(f"{prefix.name}.{variable}.png")))
    if "score" in ds:
        score = ds["score"]
        if score.ndim == 1:
            score, sem = (
                score.expand_dims(region=["data"]),
                ds["score_sem"].expand_dims(region=["data"]),
            )
        else:
            sem = ds["score_sem"]
        n_group, n_model = score.shape
        fig, ax = figure(width=min(9.0, max(5.0, 0.6 * n_model * n_group)), height=3.5)
        width = 0.8 / n_group
        x = np.arange(n_model)
        cmap = __import__("matplotlib").colormaps[CATEGORICAL]
        for g in range(n_group):
            ax.bar(
                x + g * width,
                score[g],
                width,
                yerr=sem[g],
                capsize=2,
                color=cmap(g),
                label=str(score["region"].values[g]),
            )
        if "ceiling_lower" in ds:
            ax.axhspan(float(ds["ceiling_lower"]), float(ds["ceiling_upper"]), color="0.85")
        ax.set_xticks(x + width * (n_group - 1) / 2, score["model"].values, rotation=45, ha="right")
        ax.set_ylabel(f"RDM similarity ({ds.attrs.get('comparator', '')})")
        ax.set_xlabel("model")
        if n_group > 1:
            ax.legend(title="data", fontsize=7)
        written.append(save_figure(fig, prefix.with_name(f"{prefix.name}.models.png")))
    if "identification" in ds:
        kinds = ds["transform"].values
        fig, axes = figure(1, len(kinds), width=2.6 * len(kinds), height=2.6, squeeze=False)
        for ax, kind in zip(axes[0], kinds, strict=True):
            grid = ds["identification"].sel(transform=kind)
            image = ax.imshow(
                grid.values.T, origin="lower", vmin=0, vmax=1, cmap=SEQUENTIAL, extent=[0, 1, 0, 1]
            )
            ax.set_title(str(kind))
            ax.set_xlabel("l (quantile)")
            ax.set_ylabel("u (quantile)")
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.7, label="identification accuracy")
        written.append(save_figure(fig, prefix.with_name(f"{prefix.name}.identification.png")))
    return written
