"""Stimulus images from outside the session file (the dataset option ``images:``).

The Allen Visual Coding Neuropixels session files carry no stimulus templates: AllenSDK keeps the
natural-scene templates apart, one TIFF per scene number (``EcephysProjectCache``'s manifest path
``natural_scene_templates/natural_scene_%d.tiff``, read by ``read_scene``, a 2-D array; the scene
number is the ``frame`` of ``natural_scenes`` presentations) and each natural movie as one
(frame, y, x) array (``natural_movie_templates/natural_movie_%d.h5``, read by ``read_movie`` with
``np.load``); see ``allensdk/brain_observatory/ecephys/ecephys_project_cache.py``. Labs keep
theirs the same two ways, so ``images: {stimulus: path}`` takes either:

- a **folder** of one image per frame, the frame index being the last number in the file name
  (``0.png``, ``natural_scene_12.tiff``, ``frame_0003.npy``): ``.png``, ``.tif``/``.tiff``,
  ``.jpg``/``.jpeg``, ``.bmp`` read with Pillow (colour images become luma, ITU-R 601), ``.npy``
  2-D arrays; other files are ignored;
- one **stack** file: ``.npy`` (frame, y, x), row k showing frame k; or ``.npz`` / ``.h5`` /
  ``.hdf5`` with an array ``images`` (frame, y, x) and optionally ``frame`` (frame,), the frame
  index of each row (default 0, 1, ...). The file's content decides how it is read (an AllenSDK
  ``natural_movie_%d.h5`` is an ``.npy`` array under another name).

Pixel values and their number type are kept as they are (a real session's 118 natural scenes of
918 x 1174 pixels stay 127 MB of uint8; the stages convert to float). The frame ``-1`` of
``natural_scenes`` is the blank: a condition of its own (AllenSDK's
``NaturalScenes.null_condition``, left out of ``images_nonblank``;
``ecephys/stimulus_analysis/natural_scenes.py``), never an image index.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurodag.errors import InputError

log = logging.getLogger(__name__)

BLANK_FRAME = -1
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".npy")
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as Pillow's convert("L")
_NPY_MAGIC, _ZIP_MAGIC, _HDF5_MAGIC = b"\x93NUMPY", b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class StimulusImages:
    """Images ``(frame, y, x)`` and the frame index of each (ascending, unique)."""

    frame: np.ndarray  # int64
    images: np.ndarray  # (frame, y, x), the files' number type
    source: str  # where they came from, for errors

    def missing(self, frames: np.ndarray) -> np.ndarray:
        """The image frames (not the blank) among ``frames`` that have no image, sorted."""
        wanted = np.unique(np.asarray(frames)[np.asarray(frames) != BLANK_FRAME])
        return wanted[~np.isin(wanted, self.frame)]


def frame_number(path: Path) -> int | None:
    """The frame index in a file name: the last run of digits of its stem (None if none)."""
    numbers = re.findall(r"\d+", path.stem)
    return int(numbers[-1]) if numbers else None


def image_files(path: str | Path, field: str = "images") -> list[Path]:
    """The files ``path`` reads: a folder's image files (sorted by frame), or the stack file."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise InputError(
                path, field, f"no image files ({'/'.join(IMAGE_SUFFIXES)}) in this folder"
            )
        unnumbered = [p.name for p in files if frame_number(p) is None]
        if unnumbered:
            raise InputError(
                path / unnumbered[0],
                field,
                "no frame index in the file name (name images by frame: 0.png, scene_12.tiff)",
            )
        return sorted(files, key=frame_number)
    if path.is_file():
        return [path]
    raise InputError(path, field, "no such image folder or stack file")


def read_image(path: Path, field: str = "images") -> np.ndarray:
    """One 2-D image (y, x) in its own number type (colour images: luma, float64)."""
    if path.suffix.lower() == ".npy":
        image = _load_npy(path, field)
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as handle:
                if getattr(handle, "n_frames", 1) > 1:
                    raise InputError(
                        path, field, f"holds {handle.n_frames} pages; give one image per file"
                    )
                if handle.mode == "1":  # bilevel: 0 / 255
                    handle = handle.convert("L")
                elif handle.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr", "HSV", "LAB"):
                    handle = handle.convert("RGB")
                image = np.asarray(handle)
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(path, field, f"not a readable image ({exc})") from exc
        if image.ndim == 3:  # RGB -> luma
            image = image[..., :3].astype(np.float64) @ LUMA
    if image.ndim != 2:
        raise InputError(path, field, f"an image must be 2-D (y, x), got shape {image.shape}")
    if image.dtype.kind not in "iuf":
        raise InputError(path, field, f"pixels must be numbers, got {image.dtype}")
    return image


def _load_npy(path: Path, field: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(path, field, f"not a readable .npy array ({exc})") from exc


def read_folder(folder: Path, field: str = "images") -> StimulusImages:
    """A folder of one image per frame (see the module doc)."""
    files = image_files(folder, field)
    frames = np.array([frame_number(p) for p in files], dtype=np.int64)
    repeated = frames[1:][frames[1:] == frames[:-1]]
    if repeated.size:
        twins = [p.name for p in files if frame_number(p) == repeated[0]]
        raise InputError(folder, field, f"frame {repeated[0]} has two files: {', '.join(twins)}")
    images = []
    for path in files:
        image = read_image(path, field)
        if images and image.shape != images[0].shape:
            raise InputError(
                path, field, f"image is {image.shape}, the folder's first is {images[0].shape}"
            )
        images.append(image)
    log.info("read %d images %s from %s", len(images), images[0].shape, folder)
    return StimulusImages(frames, np.stack(images), str(folder))


def read_stack(path: Path, field: str = "images") -> StimulusImages:
    """One stack file: ``.npy`` (frame, y, x), or ``images`` and ``frame`` in ``.npz``/HDF5."""
    with open(path, "rb") as handle:
        magic = handle.read(8)
    frame = None
    if magic.startswith(_NPY_MAGIC):
        images = _load_npy(path, field)
    elif magic.startswith(_ZIP_MAGIC):
        with np.load(path, allow_pickle=False) as archive:
            if "images" not in archive:
                raise InputError(path, "images", f"no such array; the file has {archive.files}")
            images = archive["images"]
            frame = archive.get("frame")
    elif magic.startswith(_HDF5_MAGIC):
        import h5py

        with h5py.File(path, "r") as h5:
            if "images" not in h5:
                raise InputError(path, "images", f"no such dataset; the file has {list(h5)}")
            images = h5["images"][()]
            frame = h5["frame"][()] if "frame" in h5 else None
    else:
        raise InputError(path, field, "not an image stack (.npy, .npz or HDF5 .h5)")
    if images.ndim != 3:
        raise InputError(path, "images", f"a stack must be (frame, y, x), got shape {images.shape}")
    if frame is None:
        frame = np.arange(len(images))
    frame = np.asarray(frame)
    if frame.ndim != 1 or len(frame) != len(images):
        raise InputError(
            path,
            "frame",
            f"the frame index has {frame.size} entries for {len(images)} images: one per image",
        )
    if frame.dtype.kind == "f" and np.all(np.isfinite(frame)) and np.all(frame == np.round(frame)):
        frame = frame.astype(np.int64)
    if frame.dtype.kind not in "iu" or np.any(frame < 0):
        raise InputError(path, "frame", "frame indices must be integers >= 0")
    if len(np.unique(frame)) != len(frame):
        raise InputError(path, "frame", "frame indices repeat")
    order = np.argsort(frame, kind="stable")
    log.info("read %d images %s from %s", len(images), images.shape[1:], path)
    if images.dtype.kind not in "iuf":
        raise InputError(path, "images", f"pixels must be numbers, got {images.dtype}")
    return StimulusImages(frame[order].astype(np.int64), images[order], str(path))


def read_images(path: str | Path, field: str = "images") -> StimulusImages:
    """The images at ``path``: a folder of one image per frame, or one stack file."""
    path = Path(path).expanduser()
    if path.is_dir():
        return read_folder(path, field)
    if path.is_file():
        return read_stack(path, field)
    raise InputError(path, field, "no such image folder or stack file")


def images_option(spec: dict) -> dict[str, str]:
    """A dataset entry's ``images:`` option, {stimulus: path}, without the stimuli set to null."""
    return {k: v for k, v in (spec.get("images") or {}).items() if v is not None}


def dataset_images(spec: dict) -> dict[str, StimulusImages]:
    """Every stimulus's images of a dataset entry's ``images:`` option (relative paths resolve
    like the dataset's ``path``: against the working directory)."""
    return {
        stimulus: read_images(path, f"images.{stimulus}")
        for stimulus, path in images_option(spec).items()
    }


def check_frames(
    images: StimulusImages, frames: np.ndarray, path: str | Path, table: str, key: str
) -> None:
    """Every image frame that ``frames`` (the ``frame`` column of the presentation table
    ``table`` of the file ``path``) uses must have an image (else an error naming the images'
    source and the config ``key``); the blank (-1) needs none."""
    try:
        frames = np.asarray(frames, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"{table}/frame", f"frames must be numbers ({exc})") from exc
    bad = ~np.isfinite(frames) | (frames != np.round(frames)) | ((frames < 0) & (frames != -1))
    if bad.any():
        raise InputError(
            path,
            f"{table}/frame",
            f"{int(bad.sum())} presentations have a frame that is neither an image index nor the "
            f"blank (-1), e.g. {frames[bad][:3].tolist()}",
        )
    missing = images.missing(frames.astype(np.int64))
    if missing.size:
        raise InputError(
            images.source,
            key,
            f"no image for frame(s) {_listing(missing)} that {table} of {path} shows; the images "
            f"have frames {_listing(images.frame)}",
        )


def image_index(ds) -> np.ndarray:
    """The frame index of each image of ``ds["image"]``: ``image_frame(frame)``, or positions
    0, 1, ... in files without it (templates read from the session file)."""
    if "image_frame" in ds.coords:
        return ds["image_frame"].values.astype(np.int64)
    return np.arange(ds.sizes["frame"])


def image_rows(ds, frames: np.ndarray, path: str | Path) -> np.ndarray:
    """The row of ``ds["image"]`` showing each of ``frames`` (trial or condition frame values),
    -1 for the blank. Rows are found through ``image_frame(frame)``, the images' frame indices
    (files without it: positions 0, 1, ...); any other frame without an image is an error."""
    index = image_index(ds)
    n_images = len(index)
    frames = np.asarray(frames, dtype=float)
    if np.any(~np.isfinite(frames)) or np.any(frames != np.round(frames)):
        raise InputError(path, "frame", "frames must be whole numbers (the blank: -1)")
    frames = frames.astype(np.int64)
    order = np.argsort(index, kind="stable")
    position = np.searchsorted(index[order], frames).clip(0, max(n_images - 1, 0))
    found = (index[order][position] == frames) if n_images else np.zeros(len(frames), bool)
    unknown = ~found & (frames != BLANK_FRAME)
    if unknown.any():
        raise InputError(
            path,
            "frame",
            f"frame(s) {_listing(np.unique(frames[unknown]))} have no image in image(frame, y, x) "
            "(image_frame); give every image shown with the dataset's images: option",
        )
    return np.where(found, order[position], -1)


def _listing(values: np.ndarray, most: int = 8) -> str:
    values = [int(v) for v in values]
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    text = ", ".join(map(str, values[:most]))
    return text + (f", ... ({len(values)} in all)" if len(values) > most else "")


def write_folder(
    images: np.ndarray, folder: str | Path, prefix: str, frames: np.ndarray | None = None
) -> Path:
    """Write ``images`` (frame, y, x) as one 32-bit float TIFF per frame,
    ``<folder>/<prefix>_<frame>.tiff`` (the layout of AllenSDK's natural-scene cache), replacing
    the folder whole (written beside it, then renamed)."""
    from PIL import Image

    folder = Path(folder)
    frames = np.arange(len(images)) if frames is None else np.asarray(frames)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for frame, image in zip(frames, np.asarray(images, dtype=np.float32), strict=True):
            Image.fromarray(image).save(tmp / f"{prefix}_{int(frame)}.tiff")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
