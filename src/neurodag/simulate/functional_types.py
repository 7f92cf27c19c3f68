"""Visual neurons of known functional types: the most-discriminative-stimuli test setting.

Burg et al. ("Most discriminative stimuli for functional cell type clustering", ICLR 2024) cluster
neurons by the stimuli that tell them apart: a predictive model (shared convolutional core plus a
per-neuron readout) is fitted to the responses, each neuron's readout is moved to the image centre
so that one stimulus can drive every neuron, and clusters are found by optimising one stimulus per
cluster. The method's point is that neurons of one type, whose receptive fields (RFs) sit at
different places in the visual field, respond differently to the same images, so clustering raw
response vectors groups them by RF position, while clustering in the centred model does not.

This generator plants exactly that. Each neuron is a linear-nonlinear (LN) unit with a
spatio-temporal RF that factorises into a spatial filter, set by its functional type and placed at
a random position, and a temporal impulse response (sustained or transient) set by its type:

=================  ==============================================  ==========
type               spatial filter                                  temporal
=================  ==============================================  ==========
``on_center``      difference of Gaussians, bright centre          sustained
``off_center``     difference of Gaussians, dark centre            transient
``gabor_0``        even Gabor, horizontal bars                     sustained
``gabor_45``       even Gabor, 45 degree bars                      transient
``gabor_90``       even Gabor, vertical bars                       sustained
``gabor_135``      even Gabor, 135 degree bars                     transient
=================  ==============================================  ==========

Each trial flashes one image from onset for the whole trial (``n_time * dt_s`` s, 0.25 s like the
Allen natural scenes), so the generator signal is the filter's spatial projection of the image
times the step response of its temporal kernel (the kernel's running integral), and the rate is
``base_rate_hz + gain * peak_rate_hz * f(generator / scale)`` with ``f`` a soft-thresholded
rectifier (threshold 0.5, ``f(0) = 0``, ``f(1) = 1``, floored at a fifth of the base rate), a
per-neuron gain, and a scale per type (its 90th percentile of the drive over a fixed reference
set of images) so that the types fire comparably. The spatial projection is taken on the contrast
image ((pixel - 127.5) / 127.5), so a grey screen gives the base rate.

Images (this piece brings its own set): ``n_images`` grayscale "natural-like" images with the
1/f amplitude spectrum of natural scenes (random phases, seeded), ``image_size`` pixels square,
rescaled to [0, 255] like the Allen stimulus templates. The geometry piece's images are a
separate, smaller set of gratings; the composer can keep the two as separate frame ranges or pass
a shared set here through ``images=``. Hundreds of distinct images are needed to fit the
predictive model, more than the 118 Allen natural scenes, which is why this piece makes its own.

``functional_types(...)`` returns a *planted piece* for the simulated Allen session (see
``docs/data-model.md``): a trial block ``rate(trial, neuron, time)`` in Hz (``time`` the bin
centre relative to onset, bins of ``attrs["dt_s"]``), trial variable ``frame`` (0-based index
into ``image``), ``image(frame, y, x)``, coords ``neuron`` (``ftype_000``, ...) and
``region(neuron)``, ``attrs["stimulus_name"] = "natural_scenes"``, and ground truth
``true_type(neuron)`` (type name), ``true_spatial_rf(neuron, y, x)`` (the placed spatial filter
on the image grid), ``true_temporal_kernel(neuron, time)`` (impulse response per bin),
``true_rf_center(neuron, axis)`` (pixels, ``axis`` in {y, x}) and ``true_gain(neuron)``.
``sample_responses(piece, seed)`` draws Poisson counts shaped like the Allen ingest file.
"""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

from neurodag.errors import ConfigError

PREFIX = "ftype"
#: type name -> (spatial kind, orientation in degrees or None, temporal kind)
TYPES: dict[str, tuple[str, float | None, str]] = {
    "on_center": ("dog_on", None, "sustained"),
    "off_center": ("dog_off", None, "transient"),
    "gabor_0": ("gabor", 0.0, "sustained"),
    "gabor_45": ("gabor", 45.0, "transient"),
    "gabor_90": ("gabor", 90.0, "sustained"),
    "gabor_135": ("gabor", 135.0, "transient"),
}


THRESHOLD = 0.5
SHARPNESS = 4.0


def _softplus(x: np.ndarray | float) -> np.ndarray:
    """Smooth rectifier; zero well below the threshold, linear above it."""
    return np.logaddexp(0.0, SHARPNESS * np.asarray(x)) / SHARPNESS


def natural_like_images(n_images: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Grayscale images with a 1/f amplitude spectrum (like natural scenes), in [0, 255]."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    frequency = np.hypot(fy, fx)
    amplitude = np.zeros_like(frequency)
    amplitude[frequency > 0] = 1.0 / frequency[frequency > 0]
    phase = rng.uniform(0, 2 * np.pi, size=(n_images, size, size))
    images = np.fft.ifft2(amplitude * np.exp(1j * phase)).real
    images -= images.mean(axis=(1, 2), keepdims=True)
    images /= images.std(axis=(1, 2), keepdims=True)
    # Contrast varies across images as in natural photographs; clip at +-2.5 SD then map to 8 bits.
    images *= rng.uniform(0.5, 1.0, size=(n_images, 1, 1))
    return np.clip(127.5 + 127.5 * images / 2.5, 0.0, 255.0)


@functools.lru_cache(maxsize=64)
def _type_scale(name: str, rf_size: int, rf_sigma: float) -> float:
    """The 90th percentile of a type's |filter . image| over a fixed reference set of images.

    Fixed (its own seed, independent of the images shown), so a neuron's RF and nonlinearity are
    properties of its type alone; dividing by it lets every type span the nonlinearity alike.
    """
    kind, orientation, _ = TYPES[name]
    reference = natural_like_images(256, rf_size, np.random.default_rng(20240101))
    filt = spatial_filter(kind, orientation, rf_size, rf_sigma)
    projection = ((reference - 127.5) / 127.5).reshape(256, -1) @ filt.ravel()
    return float(np.quantile(np.abs(projection), 0.9))


def spatial_filter(kind: str, orientation_deg: float | None, size: int, sigma: float) -> np.ndarray:
    """A unit-norm spatial filter on a ``size`` x ``size`` patch centred in the patch."""
    half = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size] - half
    if kind in ("dog_on", "dog_off"):
        centre = np.exp(-(x**2 + y**2) / (2 * (0.6 * sigma) ** 2))
        surround = np.exp(-(x**2 + y**2) / (2 * (1.6 * sigma) ** 2))
        filt = centre / centre.sum() - surround / surround.sum()
        if kind == "dog_off":
            filt = -filt
    elif kind == "gabor":
        theta = np.deg2rad(orientation_deg or 0.0)
        # Bars run along theta; the carrier varies across them. Wavelength ~ 2 sigma gives
        # about +-25 degree orientation bandwidth, enough to tell 45 degree steps apart.
        across = -x * np.sin(theta) + y * np.cos(theta)
        envelope = np.exp(-(x**2 + y**2) / (2 * sigma**2))
        filt = envelope * np.cos(2 * np.pi * across / (2.0 * sigma))
        filt -= envelope * (filt.sum() / envelope.sum())  # zero DC: no response to luminance
    else:
        raise ConfigError(f"spatial: unknown spatial kind {kind!r}")
    return filt / np.linalg.norm(filt)


def temporal_kernel(kind: str, time: np.ndarray, latency_s: float) -> np.ndarray:
    """Impulse response per bin: monophasic (sustained) or biphasic (transient)."""
    lag = np.clip(time - latency_s, 0.0, None)
    tau = 0.015
    fast = (lag / tau) ** 2 * np.exp(-lag / tau)
    if kind == "sustained":
        kernel = fast
    elif kind == "transient":
        slow = (lag / (2 * tau)) ** 2 * np.exp(-lag / (2 * tau))
        # Negative lobe of nearly equal area: the step response rises, then falls back.
        kernel = fast - 0.85 * slow * fast.sum() / max(slow.sum(), 1e-12)
    else:
        raise ConfigError(f"temporal: unknown temporal kind {kind!r}")
    return kernel / np.abs(np.cumsum(kernel)).max()


def functional_types(
    *,
    neurons_per_type: int = 20,
    types: tuple[str, ...] = tuple(TYPES),
    n_images: int = 600,
    repeats: int = 2,
    image_size: int = 32,
    rf_size: int = 15,
    rf_sigma: float = 2.5,
    n_time: int = 25,
    dt_s: float = 0.01,
    latency_s: float = 0.03,
    base_rate_hz: float = 3.0,
    peak_rate_hz: float = 40.0,
    region: str = "VISpm",
    images: np.ndarray | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """The functional-types trial block (planted piece), seeded.

    Neurons come in ``neurons_per_type`` blocks in ``types`` order; each neuron's RF centre is
    uniform over the image positions where the whole ``rf_size`` patch fits. Trials are the
    ``repeats`` presentations of every image in a random order. ``images`` (frame, y, x) in
    [0, 255] replaces the generated set when given.
    """
    unknown = [t for t in types if t not in TYPES]
    if unknown:
        raise ConfigError(f"types: {unknown} are not planted; choose from {list(TYPES)}")
    rng = np.random.default_rng(seed)
    if images is None:
        images = natural_like_images(n_images, image_size, rng)
    images = np.asarray(images, dtype=float)
    n_images, height, width = images.shape
    if rf_size > min(height, width):
        raise ConfigError(f"rf_size: {rf_size} does not fit in {height}x{width} images")
    contrast = (images - 127.5) / 127.5

    time = (np.arange(n_time) + 0.5) * dt_s
    n_neurons = neurons_per_type * len(types)
    type_of = np.repeat(np.asarray(types), neurons_per_type)
    half = rf_size // 2
    centre_y = rng.integers(half, height - (rf_size - half) + 1, n_neurons)
    centre_x = rng.integers(half, width - (rf_size - half) + 1, n_neurons)
    gain = rng.uniform(0.6, 1.4, n_neurons)

    spatial = np.zeros((n_neurons, height, width))
    kernels = np.zeros((n_neurons, n_time))
    for i, name in enumerate(type_of):
        kind, orientation, temporal = TYPES[name]
        patch = spatial_filter(kind, orientation, rf_size, rf_sigma)
        top, left = centre_y[i] - half, centre_x[i] - half
        spatial[i, top : top + rf_size, left : left + rf_size] = patch
        kernels[i] = temporal_kernel(temporal, time, latency_s)

    projection = contrast.reshape(n_images, -1) @ spatial.reshape(n_neurons, -1).T  # frame x neuron
    scale = np.array([_type_scale(name, rf_size, rf_sigma) for name in type_of])
    step_response = np.cumsum(kernels, axis=1)  # response to a flash that stays on, (neuron, t)
    generator = (projection / scale)[:, :, None] * step_response[None]  # frame x neuron x time
    # Soft threshold at half a scale unit: sparse, rectified responses like cortical neurons;
    # normalised so a generator of 1 (the type's 90th percentile) gives ``peak_rate_hz``.
    # The grey-screen value is subtracted so that a generator of 0 gives ``base_rate_hz``.
    rest = _softplus(-THRESHOLD)
    drive = (_softplus(generator - THRESHOLD) - rest) / (_softplus(1.0 - THRESHOLD) - rest)
    # Suppression below the base rate is allowed (drive < 0) but floored: rates stay positive.
    rate_by_frame = np.maximum(
        base_rate_hz + gain[None, :, None] * peak_rate_hz * drive, 0.2 * base_rate_hz
    )

    frame = np.concatenate([rng.permutation(n_images) for _ in range(repeats)])
    rate = rate_by_frame[frame].astype(np.float32)

    neurons = [f"{PREFIX}_{i:03d}" for i in range(n_neurons)]
    coords = {
        "trial": np.arange(frame.size),
        "neuron": neurons,
        "time": time,
        "y": np.arange(height),
        "x": np.arange(width),
        "axis": ["y", "x"],
        "region": ("neuron", [region] * n_neurons),
    }
    piece = xr.Dataset(
        {
            "rate": (("trial", "neuron", "time"), rate),
            "frame": ("trial", frame),
            "image": (("frame", "y", "x"), images.astype(np.float32)),
            "true_type": ("neuron", type_of.astype(str)),
            "true_spatial_rf": (("neuron", "y", "x"), spatial.astype(np.float32)),
            "true_temporal_kernel": (("neuron", "time"), kernels),
            "true_rf_center": (("neuron", "axis"), np.stack([centre_y, centre_x], axis=1)),
            "true_gain": ("neuron", gain),
        },
        coords=coords,
    )
    piece["rate"].attrs["units"] = "Hz"
    piece["time"].attrs["units"] = "s"
    piece["image"].attrs["description"] = "1/f natural-like grayscale images, 0-255"
    piece["true_rf_center"].attrs["units"] = "pixels"
    piece["true_spatial_rf"].attrs["description"] = (
        "unit-norm spatial filter applied to the contrast image (pixel - 127.5) / 127.5"
    )
    piece.attrs.update(
        {
            "dt_s": dt_s,
            "stimulus_name": "natural_scenes",
            "generator": "neurodag.simulate.functional_types.functional_types",
            "seed": seed,
            "types": list(types),
            "base_rate_hz": base_rate_hz,
            "peak_rate_hz": peak_rate_hz,
        }
    )
    return piece


def sample_responses(piece: xr.Dataset, seed: int = 0) -> xr.Dataset:
    """The piece as the Allen ingest would read it: Poisson ``responses(trial, neuron, time)``.

    Keeps ``frame``, ``image`` and ``region``; the ground truth stays in the piece.
    """
    rng = np.random.default_rng(seed)
    expected = piece["rate"].values.astype(float) * piece.attrs["dt_s"]
    counts = rng.poisson(expected).astype(np.int64)
    out = xr.Dataset(
        {
            "responses": (("trial", "neuron", "time"), counts),
            "frame": piece["frame"],
            "image": piece["image"],
        },
        coords={k: piece.coords[k] for k in ("trial", "neuron", "time", "region")},
    )
    out.attrs["bin_size_s"] = piece.attrs["dt_s"]
    out.attrs["stimulus_name"] = piece.attrs["stimulus_name"]
    return out
