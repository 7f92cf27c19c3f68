"""Two small planted pieces for testing the Allen session composer (and as a fallback session).

- :func:`spontaneous_states`: a continuous block (``counts(neuron, time)``) in which one region's
  units switch between two firing-rate states (``true_state(time)``);
- :func:`static_gratings`: a trial block (``rate(trial, neuron, time)``) of oriented gratings with
  blank sweeps (``orientation`` missing, as in the Allen static gratings), von Mises orientation
  tuning (``true_preferred_orientation(neuron)``) and the grating images ``image(frame, y, x)``.

They follow the planted-piece contract in ``docs/data-model.md``; the stage generators
(``switching``, ``functional_types``, ``geometry``, ``lorenz``) plant the structure the analyses
recover.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def spontaneous_states(
    *,
    n_neurons: int = 12,
    n_time: int = 400,
    dt_s: float = 0.05,
    dwell_s: float = 2.0,
    region: str = "LGd",
    seed: int = 0,
) -> xr.Dataset:
    """Poisson counts whose rates follow a two-state Markov chain (mean dwell ``dwell_s``)."""
    rng = np.random.default_rng(seed)
    switch = rng.random(n_time) < dt_s / dwell_s
    state = np.cumsum(switch) % 2
    rates = rng.uniform(1.0, 20.0, size=(2, n_neurons))  # Hz, per state and neuron
    true_rate = rates[state].T  # (neuron, time)
    counts = rng.poisson(true_rate * dt_s)
    neurons = [f"demo_states_{i:03d}" for i in range(n_neurons)]
    return xr.Dataset(
        {
            "counts": (("neuron", "time"), counts),
            "true_state": ("time", state),
            "true_rate": (("neuron", "time"), true_rate),
        },
        coords={
            "neuron": neurons,
            "time": (np.arange(n_time) + 0.5) * dt_s,
            "region": ("neuron", [region] * n_neurons),
        },
        attrs={"stimulus_name": "spontaneous", "dt_s": dt_s, "seed": seed},
    )


def static_gratings(
    *,
    n_neurons: int = 10,
    n_orientations: int = 4,
    repeats: int = 5,
    n_blank: int = 3,
    n_time: int = 10,
    dt_s: float = 0.025,
    image_size: int = 8,
    region: str = "VISp",
    seed: int = 0,
) -> xr.Dataset:
    """Gratings of ``n_orientations`` orientations (frames) plus blank sweeps (frame -1)."""
    rng = np.random.default_rng(seed)
    orientations = np.arange(n_orientations) * 180.0 / n_orientations  # degrees
    frame = rng.permutation(
        np.concatenate([np.repeat(np.arange(n_orientations), repeats), np.full(n_blank, -1)])
    )
    orientation = np.where(frame >= 0, orientations[np.maximum(frame, 0)], np.nan)
    preferred = rng.uniform(0, 180, n_neurons)
    tuning = np.exp(2 * (np.cos(np.deg2rad(2 * (orientations[:, None] - preferred))) - 1))
    evoked = np.vstack([tuning, np.zeros((1, n_neurons))])[frame]  # blank row for frame -1
    profile = np.exp(-(((np.arange(n_time) + 0.5) * dt_s - 0.08) ** 2) / (2 * 0.04**2))
    rate = 3.0 + 40.0 * evoked[:, :, None] * profile  # Hz, (trial, neuron, time)
    y, x = np.mgrid[0:image_size, 0:image_size] / image_size
    theta = np.deg2rad(orientations)[:, None, None]
    image = 127.5 * (1 + np.cos(2 * np.pi * 2 * (x * np.cos(theta) + y * np.sin(theta))))
    return xr.Dataset(
        {
            "rate": (("trial", "neuron", "time"), rate),
            "frame": ("trial", frame),
            "orientation": ("trial", orientation),
            "image": (("frame", "y", "x"), image),
            "true_preferred_orientation": ("neuron", preferred),
        },
        coords={
            "trial": np.arange(len(frame)),
            "neuron": [f"demo_gratings_{i:03d}" for i in range(n_neurons)],
            "time": (np.arange(n_time) + 0.5) * dt_s,
            "region": ("neuron", [region] * n_neurons),
        },
        attrs={"stimulus_name": "static_gratings", "dt_s": dt_s, "seed": seed},
    )
