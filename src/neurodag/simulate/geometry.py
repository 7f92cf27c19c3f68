"""Visual regions with planted representational geometries: the topological-RSA test setting.

Lin & Kriegeskorte ("The Topology and Geometry of Neural Representations", PNAS 2024) show that
regions whose representations share a *topology* but differ in fine geometry are told apart more
robustly after a geo-topological transform of their RDMs than from the raw RDMs. This generator
plants regions whose responses to the same images differ in exactly that way, with the truth
known:

- ``VISp``: a low-level code, rectified random Gabor-like filters on the pixels, so its geometry
  follows pixel similarity;
- ``VISl``: a categorical code, four clusters (one per image family), within-family spread small;
- ``VISal``: a ring, von Mises tuning to the images' grating orientation (period pi), so frames
  lie on a circle;
- ``VISam``: a line, monotonic (sigmoidal) tuning to the images' luminance, so frames lie on a
  curved one-dimensional chain.

Images are grayscale gratings: each frame has a family (spatial frequency and mask), an
orientation, a mean luminance and a contrast, drawn so that the factors are crossed (family x
luminance level), which gives factorised conditions for the parallelism score and cross-condition
generalisation. Pixel values are in [0, 255] like the Allen stimulus templates.

``natural_scenes(...)`` returns a *planted piece* for the simulated Allen session (see
``docs/data-model.md``): a trial block ``rate(trial, neuron, time)`` in Hz (``time`` the bin
centre relative to trial onset, bins of ``attrs["dt_s"]``), trial variable ``frame``, coords
``neuron`` (``geometry_VISp_000``, ...) and ``region(neuron)``, ``image(frame, y, x)``,
``attrs["stimulus_name"] = "natural_scenes"``, and ground truth ``true_rdm(rdm_region, frame,
frame2)`` (squared Euclidean distance between the noise-free mean-rate patterns over the response
window, divided by the region's number of neurons, in Hz^2) plus the image factors
``true_family(frame)``, ``true_orientation(frame)`` (rad), ``true_luminance(frame)`` and
``true_code(rdm_region)`` (the planted code's name). The RDM's region axis is ``rdm_region``,
not ``region``, because ``region`` is already the coordinate on ``neuron``; ``frame`` is both the
trial variable and the (positional, 0-based) first axis of ``image`` and ``true_*(frame)``;
with ``n_blank`` the trials also show the blank, frame -1, which has no image.
Subjects (``seed``) differ in their neurons, in their code shape (``geometry_jitter``) and,
optionally, in topology-preserving distortions of each region's geometry
(``geometry_distortion``: response nonlinearity, non-uniform neuron sampling, cluster
distinctiveness; see :func:`natural_scenes`). ``sample_responses(piece, seed)`` draws Poisson
counts shaped like the Allen ingest file (``responses(trial, neuron, time)``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from neurodag.errors import ConfigError
from neurodag.io.stimulus_images import BLANK_FRAME

REGIONS = ("VISp", "VISl", "VISal", "VISam")
CODES = {"VISp": "pixels", "VISl": "category", "VISal": "ring", "VISam": "line"}
PREFIX = "geometry"


def _grating_images(
    n_images: int, size: int, n_families: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Grayscale gratings with crossed factors: family x luminance level, random orientation."""
    n_levels = max(1, n_images // n_families)
    family = np.arange(n_images) % n_families
    level = (np.arange(n_images) // n_families) % n_levels
    luminance = 0.25 + 0.5 * (level + 0.5) / n_levels  # mean intensity in (0.25, 0.75)
    # Evenly spaced orientations, shuffled so orientation is not confounded with family/level.
    orientation = rng.permutation(np.linspace(0, np.pi, n_images, endpoint=False))
    contrast = 0.2
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    radius = np.hypot(x, y)
    frequency = 2.0 + 2.5 * np.arange(n_families)  # cycles per image, per family
    images = np.empty((n_images, size, size))
    for k in range(n_images):
        along = x * np.cos(orientation[k]) + y * np.sin(orientation[k])
        carrier = np.cos(2 * np.pi * frequency[family[k]] * along)
        # Families also differ in aperture: odd families are windowed by a disc.
        mask = 1.0 if family[k] % 2 == 0 else (radius < 0.35).astype(float)
        images[k] = np.clip(luminance[k] + contrast * carrier * mask, 0.0, 1.0)
    factors = {"family": family, "orientation": orientation, "luminance": luminance}
    return 255.0 * images, factors


def _region_drive(
    code: str,
    n_neurons: int,
    images: np.ndarray,
    factors: dict[str, np.ndarray],
    rng: np.random.Generator,
    jitter: float = 0.0,
    distortion: float = 0.0,
    subject_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Evoked drive (frame, neuron) in [0, 1] for one planted code.

    ``jitter`` scales a per-session change of the code's shape (rectification exponent, cluster
    spread, tuning width, slope): the geometry changes while the topology (which frames are
    neighbours) stays, like different subjects' versions of one region. ``distortion`` scales the
    subject's topology-preserving warps (see :func:`natural_scenes`), drawn from ``subject_rng``
    so that ``rng``'s draws, and hence the undistorted code, do not depend on it.
    """
    n_images, size, _ = images.shape
    shape = np.exp(jitter * rng.uniform(-0.7, 0.7))  # > 0, 1 without jitter
    subject_rng = subject_rng if subject_rng is not None else np.random.default_rng(0)
    # Every subject parameter is drawn whatever ``distortion`` is, so strengths are paired.
    warp = _subject_warp(distortion, subject_rng, int(factors["family"].max()) + 1)
    if code == "pixels":
        pixels = images.reshape(n_images, -1) / 255.0
        filters = rng.normal(size=(pixels.shape[1], n_neurons))
        # Zero-mean filters (like V1 receptive fields) ignore an image's mean luminance, so this
        # code is not the luminance line of another region.
        filters = (filters - filters.mean(axis=0)) / np.sqrt(pixels.shape[1])
        drive = np.maximum(pixels @ filters, 0.0) ** shape
    elif code == "category":
        family = factors["family"]
        centroids = rng.uniform(0.0, 1.0, size=(family.max() + 1, n_neurons))
        # subject-specific distinctiveness of each family: its centroid's offset from the mean
        grand = centroids.mean(axis=0)
        centroids = grand + warp["distinctiveness"][:, None] * (centroids - grand)
        spread = 0.05 * shape
        drive = centroids[family] + rng.normal(0.0, spread, size=(n_images, n_neurons))
    elif code == "ring":
        preferred = warp["preferred"](rng.uniform(0, np.pi, n_neurons))
        # Period pi: orientation theta and theta + pi are the same grating.
        concentration = 2.0 * shape
        drive = np.exp(
            concentration * (np.cos(2 * (factors["orientation"][:, None] - preferred)) - 1)
        )
    elif code == "line":
        threshold = 0.3 + 0.4 * warp["threshold"](rng.uniform(0.0, 1.0, n_neurons))
        sign = rng.choice([-1.0, 1.0], n_neurons)
        width = 0.08 * shape
        drive = 1 / (1 + np.exp(-sign * (factors["luminance"][:, None] - threshold) / width))
    else:
        raise ConfigError(
            f"codes: unknown code {code!r}; expected one of {sorted(set(CODES.values()))}"
        )
    drive = drive - drive.min()
    return warp["output"](drive / max(drive.max(), 1e-12))


def _subject_warp(distortion: float, rng: np.random.Generator, n_families: int) -> dict:
    """One subject's topology-preserving distortions of a code, scaled by ``distortion`` (0: none).

    - ``output``: the response nonlinearity, ``tanh(k x^g) / tanh(k)`` on drive ``x`` in [0, 1]
      (expansive exponent ``g >= 1``, then saturating, like a Naka-Rushton contrast-response
      curve; subjects differ in both), strictly increasing with 0 -> 0 and 1 -> 1, so a
      homeomorphism of the response space;
    - ``preferred`` (ring): preferred orientations sampled from the density
      ``(1 + a cos 2(theta - mu)) / pi`` (an over-represented orientation ``mu``, as in the
      cardinal bias of V1) by its inverse CDF applied to uniform draws;
    - ``threshold`` (line): thresholds crowded toward one end of their range, ``u -> u^e``;
    - ``distinctiveness`` (category): a per-family factor (>= 1) on the family's centroid offset
      from the mean of the centroids.
    Each is the identity at ``distortion = 0``.
    """
    # expansive at low drive, saturating at high drive, like a Naka-Rushton curve (n >= 1)
    exponent = np.exp(distortion * rng.uniform(0.0, 0.7))
    saturation = distortion * rng.uniform(0.0, 2.0)
    axis, ring_strength = rng.uniform(0, np.pi), np.tanh(distortion * rng.uniform(0.3, 1.0))
    threshold_exponent = np.exp(distortion * rng.uniform(-0.8, 0.8))
    # >= 1: families move apart from the mean by different factors, so no two clusters merge
    distinctiveness = np.exp(distortion * rng.uniform(0.0, 0.7, size=n_families))

    def output(x):
        x = x**exponent
        return np.tanh(saturation * x) / np.tanh(saturation) if saturation > 1e-9 else x

    def preferred(theta):
        # inverse of the CDF  (t + a/2 (sin 2(t - mu) + sin 2 mu)) / pi  on [0, pi)
        grid = np.linspace(0.0, np.pi, 2049)
        cdf = grid + ring_strength / 2 * (np.sin(2 * (grid - axis)) + np.sin(2 * axis))
        return np.interp(theta, cdf, grid)

    return {
        "output": output,
        "preferred": preferred,
        "threshold": lambda u: u**threshold_exponent,
        "distinctiveness": distinctiveness,
    }


def natural_scenes(
    *,
    n_images: int = 32,
    image_size: int = 24,
    n_families: int = 4,
    neurons_per_region: int = 30,
    repeats: int = 10,
    n_time: int = 25,
    dt_s: float = 0.01,
    base_rate_hz: float = 4.0,
    evoked_rate_hz: float = 30.0,
    latency_s: float = 0.04,
    regions: tuple[str, ...] = REGIONS,
    seed: int = 0,
    image_seed: int | None = None,
    geometry_jitter: float = 1.0,
    geometry_distortion: float = 0.0,
    n_blank: int = 0,
) -> xr.Dataset:
    """The natural-scenes trial block (planted piece), seeded.

    Each trial shows one frame for ``n_time * dt_s`` s (0.25 s like the Allen natural scenes);
    trials are the ``repeats`` presentations of every frame in random order. A neuron's rate is
    ``base_rate_hz + evoked_rate_hz * gain * drive(frame) * profile(t)``, with a per-neuron gain in
    [0.5, 1.5] and a temporal profile that rises after ``latency_s`` and decays (alpha function).
    ``image_seed`` (default: ``seed``) draws the images alone, so that sessions with different
    ``seed`` (different neurons, and geometries that differ in detail but share each region's
    topology) can show the same images, like subjects in an RSA study. ``geometry_jitter``
    scales how much each region's code shape (tuning width, cluster spread, ...) varies with
    ``seed``; 0 keeps it fixed.

    ``geometry_distortion`` (default 0: none, and then the piece is bit-identical to one made
    without it) adds inter-individual variability of the kind the topological-RSA argument rests
    on: each ``seed`` (subject) gets its own topology-preserving distortions of every region's
    code (:func:`_subject_warp`), drawn from a generator of their own so the undistorted draws do
    not change: a response nonlinearity (exponent and saturation, strictly increasing, so a
    homeomorphism of the response space), non-uniform neuron sampling along the coded variable
    (an over-represented orientation on the ring, thresholds crowded toward one end of the line;
    either warps distances along the manifold but keeps its ring or chain topology) and per-family
    distinctiveness of the categorical clusters (cluster distances change, the four clusters
    stay). Tuning-width changes on a uniformly sampled ring or line (``geometry_jitter``) change
    distances nearly monotonically, which per-RDM ranking already removes; these distortions
    change the *order* of distances while keeping neighbourhoods, i.e. geometry without topology.

    ``n_blank`` presentations of the blank (frame -1, a grey screen: every neuron at
    ``base_rate_hz``) are shuffled among the image trials, as in the Allen natural_scenes table
    (the blank is a condition of its own, with no image); 0 (default) leaves the piece unchanged.
    """
    if n_blank < 0:
        raise ConfigError(f"n_blank: {n_blank} must be >= 0")
    unknown = [r for r in regions if r not in CODES]
    if unknown:
        raise ConfigError(f"regions: {unknown} have no planted code; choose from {list(CODES)}")
    image_rng = np.random.default_rng([seed if image_seed is None else image_seed, 0])
    rng = np.random.default_rng([seed, 1])
    subject_rng = np.random.default_rng([seed, 2])  # the subject's distortions alone
    images, factors = _grating_images(n_images, image_size, n_families, image_rng)
    time = (np.arange(n_time) + 0.5) * dt_s
    lag = np.clip(time - latency_s, 0.0, None)
    tau = 0.04
    profile = (lag / tau) * np.exp(1 - lag / tau)  # alpha function, peak 1 at latency + tau

    mean_rates, neuron_ids, neuron_regions, true_rdm = [], [], [], []
    for region in regions:
        drive = _region_drive(
            CODES[region],
            neurons_per_region,
            images,
            factors,
            rng,
            geometry_jitter,
            geometry_distortion,
            subject_rng,
        )
        gain = rng.uniform(0.5, 1.5, neurons_per_region)
        # rate(frame, neuron, time)
        rate = base_rate_hz + evoked_rate_hz * (gain * drive)[:, :, None] * profile
        mean_rates.append(rate)
        pattern = rate.mean(axis=2)  # mean rate over the response window, (frame, neuron)
        diff = pattern[:, None, :] - pattern[None, :, :]
        true_rdm.append((diff**2).sum(axis=2) / neurons_per_region)
        neuron_ids += [f"{PREFIX}_{region}_{i:03d}" for i in range(neurons_per_region)]
        neuron_regions += [region] * neurons_per_region
    rate_by_frame = np.concatenate(mean_rates, axis=1)

    frame_of_trial = rng.permutation(np.repeat(np.arange(n_images), repeats))
    if n_blank:  # blanks at the base rate, placed by a generator of their own
        total = frame_of_trial.size + n_blank
        is_blank = np.zeros(total, dtype=bool)
        is_blank[np.random.default_rng([seed, 3]).choice(total, n_blank, replace=False)] = True
        frames = np.full(total, BLANK_FRAME)
        frames[~is_blank] = frame_of_trial  # the image trials keep their order
        frame_of_trial = frames
        blank = np.full((1, *rate_by_frame.shape[1:]), base_rate_hz)
        rate_by_frame = np.concatenate([rate_by_frame, blank])  # row n_images: the blank
    piece = xr.Dataset(
        {
            "rate": (
                ("trial", "neuron", "time"),
                rate_by_frame[np.where(frame_of_trial == BLANK_FRAME, n_images, frame_of_trial)],
            ),
            "frame": ("trial", frame_of_trial),
            "image": (("frame", "y", "x"), images),
            "true_rdm": (("rdm_region", "frame", "frame2"), np.stack(true_rdm)),
            "true_family": ("frame", factors["family"]),
            "true_orientation": ("frame", factors["orientation"]),
            "true_luminance": ("frame", factors["luminance"]),
            "true_code": ("rdm_region", [CODES[r] for r in regions]),
        },
        coords={
            "trial": np.arange(len(frame_of_trial)),
            "neuron": neuron_ids,
            "region": ("neuron", neuron_regions),
            "rdm_region": list(regions),
            "time": time,
        },
        attrs={
            "stimulus_name": "natural_scenes",
            "dt_s": dt_s,
            "seed": seed,
            "description": "planted representational geometries (neurodag.simulate.geometry)",
        },
    )
    piece["rate"].attrs["units"] = "Hz"
    piece["true_rdm"].attrs["units"] = "Hz^2"
    piece["true_rdm"].attrs["description"] = (
        "squared Euclidean distance between mean-rate patterns / number of neurons"
    )
    piece["true_orientation"].attrs["units"] = "rad"
    return piece


def sample_responses(piece: xr.Dataset, seed: int = 0) -> xr.Dataset:
    """Poisson counts shaped like the Allen ingest's ``{stimulus}.nc``: ``responses(trial, neuron,
    time)`` with ``frame(trial)``, ``region(neuron)`` and ``image(frame, y, x)``."""
    rng = np.random.default_rng(seed)
    dt = piece.attrs["dt_s"]
    counts = rng.poisson(piece["rate"].values * dt).astype(np.int32)
    return xr.Dataset(
        {
            "responses": (("trial", "neuron", "time"), counts),
            "frame": ("trial", piece["frame"].values),
            "image": (("frame", "y", "x"), piece["image"].values),
        },
        coords={
            "trial": piece["trial"].values,
            "neuron": piece["neuron"].values,
            "region": ("neuron", piece["region"].values),
            "time": piece["time"].values,
        },
        attrs={"bin_size_s": dt, "stimulus_name": piece.attrs["stimulus_name"]},
    )
