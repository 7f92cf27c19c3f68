"""Stimulus images from outside the session file (the dataset option ``images:``): the reader's
folders and stacks round-trip, the ingest attaches them to a session file that has no templates,
the MDS and geometry stages run on them with the blank frame (-1) as a condition of its own, and
each bad input stops with the file and the field named and writes nothing."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import xarray as xr
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from neurodag.config import stage_defaults
from neurodag.errors import InputError
from neurodag.ingest_allen import ingest_session
from neurodag.io.allen_nwb import DEFAULT_UNIT_FILTER, read_session
from neurodag.io.netcdf import write_dataset
from neurodag.io.stimulus_images import (
    BLANK_FRAME,
    frame_number,
    image_rows,
    read_images,
    write_folder,
)
from neurodag.simulate.allen import compose_session, image_folder, write_session
from neurodag.simulate.functional_types import functional_types
from neurodag.simulate.geometry import natural_scenes

MDS_STIMULUS = "natural_scenes_mds"
WINDOW = {"window_s": [0.0, 0.25], "bin_size_s": 0.01}
PARAMS = {
    "bin_size_s": 0.05,
    "regions": None,
    "unit_filter": dict(DEFAULT_UNIT_FILTER),
    "responses": {"natural_scenes": WINDOW, MDS_STIMULUS: WINDOW},
}


# -- the reader: folders and stacks round-trip ----------------------------------------------

dtypes = st.sampled_from(["uint8", "uint16", "float32"])


@st.composite
def image_sets(draw):
    dtype = draw(dtypes)
    frames = np.array(
        sorted(draw(st.sets(st.integers(0, 5000), min_size=1, max_size=6))), dtype=np.int64
    )
    shape = (len(frames), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    top = 255 if dtype == "uint8" else 65535
    images = rng.uniform(0, top, shape).astype(dtype)
    return frames, images


def _write_file(path, image):
    if path.suffix == ".npy":
        np.save(path, image)
    else:
        Image.fromarray(image).save(path)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=image_sets(), suffix=st.sampled_from([".tiff", ".png", ".npy"]), seed=st.integers(0, 99)
)
def test_folder_round_trip(tmp_path_factory, data, suffix, seed):
    frames, images = data
    if suffix == ".png" and images.dtype == np.float32:
        images = images.astype(np.uint8)  # PNG holds integers
    folder = tmp_path_factory.mktemp("folder")
    names = ["{}.{}", "natural_scene_{}.{}", "frame_{:05d}.{}"]
    rng = np.random.default_rng(seed)
    for frame, image in zip(frames, images, strict=True):
        name = names[rng.integers(len(names))].format(frame, suffix[1:])
        _write_file(folder / name, image)
    (folder / "manifest.json").write_text("{}")  # other files are not images: ignored
    read = read_images(folder)
    np.testing.assert_array_equal(read.frame, frames)
    np.testing.assert_array_equal(read.images, images)
    assert read.images.dtype == images.dtype  # kept as stored (uint8 stays small)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=image_sets(), kind=st.sampled_from(["npy", "npz", "h5", "h5 named .npy"]))
def test_stack_round_trip(tmp_path_factory, data, kind):
    frames, images = data
    folder = tmp_path_factory.mktemp("stack")
    shuffle = np.random.default_rng(len(frames)).permutation(len(frames))
    if kind == "npy":  # row k is frame k
        frames = np.arange(len(images))
        path = folder / "stack.npy"
        np.save(path, images)
    elif kind == "npz":
        path = folder / "stack.npz"
        np.savez(path, images=images[shuffle], frame=frames[shuffle])
    else:
        # the content decides: an HDF5 file, or an .npy array named .h5 like AllenSDK's movies
        path = folder / "stack.h5"
        if kind == "h5":
            with h5py.File(path, "w") as h5:
                h5["images"], h5["frame"] = images[shuffle], frames[shuffle]
        else:
            frames = np.arange(len(images))
            with open(path, "wb") as handle:
                np.save(handle, images)
    read = read_images(path)
    np.testing.assert_array_equal(read.frame, frames)
    np.testing.assert_array_equal(read.images, images)


def test_simulator_folder_reads_back_as_written(tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, (4, 6, 5)).astype(np.float32)
    folder = write_folder(images, tmp_path / "natural_scenes", "natural_scenes", [3, 7, 8, 20])
    assert sorted(p.name for p in folder.iterdir())[0] == "natural_scenes_20.tiff"
    read = read_images(folder)
    np.testing.assert_array_equal(read.frame, [3, 7, 8, 20])
    np.testing.assert_array_equal(read.images, images)


def test_frame_number_is_the_last_number_of_the_stem():
    from pathlib import Path

    assert frame_number(Path("natural_scene_12.tiff")) == 12
    assert frame_number(Path("movie1_frame_0003.npy")) == 3
    assert frame_number(Path("blank.png")) is None


def test_colour_images_become_luma(tmp_path):
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 50, 200
    Image.fromarray(rgb).save(tmp_path / "0.png")
    read = read_images(tmp_path)
    np.testing.assert_allclose(read.images[0], 0.299 * 100 + 0.587 * 50 + 0.114 * 200)


def test_image_rows_map_frames_and_leave_the_blank_out():
    ds = xr.Dataset(
        {"image": (("frame", "y", "x"), np.zeros((3, 1, 1)))},
        coords={"image_frame": ("frame", [5, 2, 9])},
    )
    np.testing.assert_array_equal(image_rows(ds, [9, 2, -1, 5, 9], "f.nc"), [2, 1, -1, 0, 2])
    with pytest.raises(InputError, match="f.nc: frame: frame.s. 3 have no image"):
        image_rows(ds, [3, 5], "f.nc")


# -- bad image inputs -------------------------------------------------------------------------


def test_stack_whose_size_differs_from_its_index(tmp_path):
    path = tmp_path / "stack.npz"
    np.savez(path, images=np.zeros((4, 3, 3)), frame=np.arange(3))
    with pytest.raises(InputError) as error:
        read_images(path, "images.natural_scenes")
    assert str(path) in str(error.value) and ": frame:" in str(error.value)
    assert "3 entries for 4 images" in str(error.value)


@pytest.mark.parametrize(
    "files, message",
    [
        ({"3.npy": (3, 3), "frame_3.npy": (3, 3)}, "frame 3 has two files"),
        ({"0.npy": (3, 3), "1.npy": (3, 4)}, "the folder's first is"),
        ({"0.npy": (3, 3), "cover.png": None}, "no frame index in the file name"),
        ({"0.npy": (2, 3, 3)}, "must be 2-D"),
        ({"notes.txt": None}, "no image files"),
    ],
)
def test_bad_folders(tmp_path, files, message):
    for name, shape in files.items():
        if shape is None:
            (tmp_path / name).write_text("x")
        else:
            np.save(tmp_path / name, np.zeros(shape))
    with pytest.raises(InputError, match=message) as error:
        read_images(tmp_path, "images.natural_scenes")
    assert "images.natural_scenes" in str(error.value) and str(tmp_path) in str(error.value)


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="no such image folder or stack file"):
        read_images(tmp_path / "nope", "images.natural_scenes")


# -- a session file without templates, images from outside, blank presentations ---------------


def test_geometry_piece_blanks():
    sizes = {"n_images": 6, "image_size": 8, "neurons_per_region": 3, "repeats": 2, "seed": 1}
    plain, blanks = natural_scenes(**sizes), natural_scenes(**sizes, n_blank=4)
    blank = blanks["frame"].values == BLANK_FRAME
    assert blank.sum() == 4 and blanks.sizes["trial"] == plain.sizes["trial"] + 4
    np.testing.assert_array_equal(blanks["rate"].values[blank], 4.0)  # the base rate
    # the image trials, in their order, are the plain piece's
    np.testing.assert_array_equal(blanks["frame"].values[~blank], plain["frame"].values)
    np.testing.assert_array_equal(blanks["rate"].values[~blank], plain["rate"].values)
    np.testing.assert_array_equal(blanks["image"].values, plain["image"].values)


def with_blanks(piece: xr.Dataset, n_blank: int, seed: int) -> xr.Dataset:
    """The piece plus ``n_blank`` presentations of the blank (frame -1: each neuron's lowest
    rate), shuffled among the image presentations, as in the Allen natural_scenes table."""
    blank = piece.isel(trial=np.zeros(n_blank, dtype=int))
    blank["rate"] = (
        piece["rate"].min("trial").expand_dims(trial=n_blank).transpose(*blank["rate"].dims)
    )
    blank["frame"] = ("trial", np.full(n_blank, BLANK_FRAME))
    both = xr.concat([piece, blank], "trial", data_vars="minimal", coords="minimal")
    order = np.random.default_rng(seed).permutation(both.sizes["trial"])
    return both.isel(trial=order).assign_coords(trial=np.arange(both.sizes["trial"]))


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A composed session with a geometry and a functional-types block, each with blanks; the
    NWB file has no templates (as the real files), the images are folders beside it."""
    geometry = natural_scenes(
        n_images=10, image_size=12, neurons_per_region=30, repeats=10, seed=2, n_blank=10
    )
    mds = functional_types(neurons_per_type=4, n_images=120, repeats=2, image_size=20, seed=3)
    mds.attrs["stimulus_name"] = MDS_STIMULUS
    pieces = [geometry, with_blanks(mds, 20, seed=1)]
    composed = compose_session(pieces, seed=4, n_filtered_units=2)
    folder = tmp_path_factory.mktemp("session")
    nwb, truth = write_session(composed, folder, parameters={})
    images = {s: str(image_folder(folder, s)) for s in ("natural_scenes", MDS_STIMULUS)}
    spec = {"kind": "allen", "format": "allen-nwb", "path": str(nwb), "images": images}
    return composed, nwb, truth, spec


def test_session_file_has_no_templates(session):
    _, nwb, _, _ = session
    assert read_session(nwb).templates == {}
    with h5py.File(nwb, "r") as h5:
        assert len(h5.get("stimulus/templates", {})) == 0


@pytest.fixture(scope="module")
def ingested(session, tmp_path_factory):
    composed, nwb, truth, spec = session
    outputs = ingest_session(nwb, spec, PARAMS)
    folder = tmp_path_factory.mktemp("ingest")
    paths = {
        name: write_dataset(ds, folder / f"{name}.nc", stage="ingest")
        for name, ds in outputs.items()
    }
    return outputs, paths, truth


def test_ingest_attaches_the_folder_images(session, ingested):
    composed, _, _, spec = session
    outputs, _, _ = ingested
    for stimulus in ("natural_scenes", MDS_STIMULUS):
        ds = outputs[stimulus]
        planted = composed.templates[stimulus].astype(np.float32)
        np.testing.assert_array_equal(ds["image"].values, planted)
        np.testing.assert_array_equal(ds["image_frame"].values, np.arange(len(planted)))
        assert ds["image"].attrs["source"] == spec["images"][stimulus]
        assert (ds["frame"].values == BLANK_FRAME).sum() > 0  # blanks stay presentations


def test_mds_leaves_the_blank_out_of_the_image_means(ingested):
    from neurodag.mds.stage import load_responses

    outputs, paths, _ = ingested
    params = {**stage_defaults("mds"), "regions": None, "stimulus": MDS_STIMULUS}
    images, responses, neurons, _, frames = load_responses([paths[MDS_STIMULUS]], params)
    ds = outputs[MDS_STIMULUS]
    np.testing.assert_array_equal(frames, np.arange(120))
    assert len(images) == 120 and responses.shape == (120, ds.sizes["neuron"])
    window = params["window_s"] or [-np.inf, np.inf]
    counts = ds["responses"].sel(time=slice(*window)).sum("time")
    for frame in (0, 57):  # independent: the mean over that frame's presentations
        expected = counts.values[ds["frame"].values == frame].mean(0)
        np.testing.assert_allclose(responses[frame], expected)


def test_geometry_keeps_the_blank_as_its_own_condition(ingested):
    from neurodag.geometry.stage import geometry_from_responses

    _, paths, _ = ingested
    params = {
        **stage_defaults("geometry"),
        **{"n_bootstrap": 5, "grid_step": 0.5, "splits": 3, "min_neurons": 4},
        "regions": ["VISp", "VISl", "VISal", "VISam"],  # the piece's (not the mds block's)
    }
    out = geometry_from_responses([paths["natural_scenes"]], params)
    assert list(out["frame"].values) == [-1, *range(10)]
    rdm = out["rdm"].values
    assert np.isfinite(rdm).all() and (rdm[:, 0, 1:] != 0).all()  # blank differs from images
    pixels = out["model_rdm"].sel(model="pixels").values
    assert np.isnan(pixels[0]).all() and np.isfinite(pixels[1:, 1:]).all()
    # the image models are those of the images, in frame order (not the blank, not wrapped)
    image = xr.open_dataset(paths["natural_scenes"])["image"].values.astype(float)
    luminance = image.reshape(10, -1).mean(1)
    np.testing.assert_allclose(
        out["model_rdm"].sel(model="luminance").values[1:, 1:],
        np.abs(luminance[:, None] - luminance[None]),
    )
    assert np.isfinite(out["score"].values).all()
    # identification over regions still runs with the blank among the conditions
    from neurodag.geometry.stage import validate

    accuracy = validate(out)["validation_identification_accuracy"].values
    assert accuracy[0] >= 0.75  # raw RDMs; 4 regions: chance 0.25


@pytest.mark.slow
def test_mds_runs_on_the_folder_images(ingested, tmp_path):
    outputs, paths, truth = ingested
    fast = {
        "regions": None,
        "model": {"max_epochs": 8, "patience": 3},
        "clustering": {"steps": 10, "max_iterations": 2, "max_clusters": 6, "initial_clusters": 3},
    }
    out = tmp_path / "mds.nc"
    result = run_cli(
        "mds", "--input", str(paths[MDS_STIMULUS]), "--params", json.dumps(fast),
        "--device", "cpu", "--truth", str(truth), "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ds = xr.open_dataset(out)
    assert list(ds["frame"].values) == list(range(120))
    assert "blank presentations (frame -1) left out" in result.stderr


# -- bad input end to end: one clear error, non-zero exit, no output --------------------------


def _ingest_cli(spec, nwb, out):
    return run_cli(
        "ingest", "--recording", "session", "--spec", json.dumps(spec),
        "--params", json.dumps({"allen": PARAMS}), "--input", str(nwb), "-o", str(out),
    )  # fmt: skip


def test_image_folder_lacking_a_shown_frame(session, tmp_path):
    _, nwb, _, spec = session
    import shutil

    folder = tmp_path / "scenes"
    shutil.copytree(spec["images"]["natural_scenes"], folder)
    (folder / "natural_scenes_7.tiff").unlink()
    bad = {**spec, "images": {**spec["images"], "natural_scenes": str(folder)}}
    with pytest.raises(InputError, match="no image for frame.s. 7 that intervals/natural_scenes"):
        ingest_session(nwb, bad, PARAMS)
    out = tmp_path / "out"
    result = _ingest_cli(bad, nwb, out)
    assert result.returncode != 0
    assert f"{folder}: images.natural_scenes: no image for frame(s) 7" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_image_stack_size_differs_from_its_index_end_to_end(session, tmp_path):
    _, nwb, _, spec = session
    stack = tmp_path / "scenes.h5"
    with h5py.File(stack, "w") as h5:
        h5["images"], h5["frame"] = np.zeros((10, 12, 12)), np.arange(9)
    bad = {**spec, "images": {**spec["images"], "natural_scenes": str(stack)}}
    out = tmp_path / "out"
    result = _ingest_cli(bad, nwb, out)
    assert result.returncode != 0
    assert f"{stack}: frame: the frame index has 9 entries for 10 images" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_mds_without_images_names_the_option(session, tmp_path):
    composed, nwb, _, spec = session
    outputs = ingest_session(nwb, {**spec, "images": {}}, PARAMS)
    assert "image" not in outputs[MDS_STIMULUS]
    path = write_dataset(outputs[MDS_STIMULUS], tmp_path / f"{MDS_STIMULUS}.nc", stage="ingest")
    out = tmp_path / "mds.nc"
    result = run_cli("mds", "--input", str(path), "--params", '{"regions": null}', "-o", str(out))
    assert result.returncode == 2, result.stderr
    assert f"{path}: image: missing" in result.stderr
    assert f"images: option (datasets.<dataset>.images.{MDS_STIMULUS}" in result.stderr
    assert not out.exists()


# -- the workflow: image files are inputs of the ingest rule ----------------------------------


def test_image_files_are_ingest_inputs(tmp_path, session):
    from conftest import snakemake
    from scratch_workflow import copy_workflow

    _, nwb, _, spec = session
    workdir = copy_workflow(tmp_path / "wf")
    mine = workdir / "mine.yaml"
    mine.write_text(
        "datasets:\n"
        f"  mine: {{kind: allen, format: allen-nwb, path: {nwb},"
        f" images: {{natural_scenes: {spec['images']['natural_scenes']}}}}}\n"
        "  allen: {enabled: false}\n"
    )
    result = snakemake("-n", "--cores", "1", "--configfile", str(mine), cwd=workdir)
    assert result.returncode == 0, result.stderr
    job = result.stdout.split("rule ingest_mine:")[1].split("rule ")[0]
    inputs = job.split("input:")[1].split("\n")[0]
    assert f"{spec['images']['natural_scenes']}/natural_scenes_9.tiff" in inputs
    assert "--input " + str(nwb) in job and "natural_scenes_9.tiff --" not in job
    # a simulated dataset's images are the simulator's folders, nowhere else
    elsewhere = workdir / "elsewhere.yaml"
    elsewhere.write_text("datasets:\n  allen:\n    images: {natural_scenes: data/scenes}\n")
    result = snakemake("-n", "--cores", "1", "--configfile", str(elsewhere), cwd=workdir)
    assert result.returncode != 0
    assert (
        "datasets.allen.images.natural_scenes: the simulator writes"
        in result.stdout + result.stderr
    )
