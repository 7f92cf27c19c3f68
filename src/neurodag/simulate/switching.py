"""Clustered neurons driven by switching linear latent dynamics: the bi-clustering simulation.

Wei et al. ("Bayesian Bi-clustering of Neural Spiking Activity with Latent Structures") evaluate
their sampler on a population whose neurons fall into clusters, each cluster with its own latent
trajectory, while the time bins fall into discrete dynamical states shared by all clusters. The
paper's setting: 3 clusters x 10 neurons, T = 500 bins, two states — one with near-zero dynamics
(the latents barely move) and one in which every cluster's latent slowly rotates — and negative
binomial counts with dispersion 10. This module generates that setting:

- cluster ``k`` has a mean ``mu_k(t)`` and a ``dim``-dimensional latent ``x_k(t)``; the stacked
  latents follow ``h_t = b_s + A_s h_{t-1} + e_t``, ``e_t ~ N(0, Q_s)`` with ``s = state(t)``;
- state 0 ("still"): ``A = I``, ``b = 0``, small noise, so latents stay where they are;
- state 1 ("rotation"): each ``x_k`` turns by ``2 pi / rotation_period_bins`` per bin about the
  origin, with slightly larger noise;
- in both states each cluster's mean ``mu_k`` is a stationary AR(1) process (coefficient
  ``mean_ar``, innovation sd ``mean_noise_sd``), the slow co-fluctuation its neurons share;
- neuron ``i`` of cluster ``z_i``: ``log lambda_it = delta_i + mu_{z_i}(t) + c_i' x_{z_i}(t)`` and
  ``y_it ~ NB(mean lambda_it, dispersion r)`` (variance ``lambda + lambda^2 / r``);
- the state sequence alternates between the two states in segments whose lengths are drawn
  uniformly from ``segment_bins``, so both states are always present.

``switching_population(...)`` returns a *planted piece* for the simulated Allen session (see
``docs/data-model.md``): a continuous block ``counts(neuron, time)`` in bins of
``attrs["dt_s"]`` with ``attrs["stimulus_name"] = "spontaneous"``, coords ``neuron``
(``bicluster_000``, ...) and ``region(neuron)``, and ground truth ``true_cluster(neuron)``,
``true_state(time)``, ``true_mean(cluster, time)``, ``true_latent(cluster, time, dim)``,
``true_offset(neuron)``, ``true_loading(neuron, dim)``, ``true_dispersion(neuron)`` and
``true_rate(neuron, time)`` (Hz).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from neurodag.errors import ConfigError

STATE_NAMES = ("still", "rotation")


def alternating_states(
    n_time: int, segment_bins: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """State 0/1 per bin, alternating in segments of uniform random length, random first state."""
    low, high = segment_bins
    if not 1 <= low <= high:
        raise ConfigError(f"segment_bins: must satisfy 1 <= low <= high, got {segment_bins}")
    states = np.empty(n_time, dtype=np.int64)
    state, start = int(rng.integers(2)), 0
    while start < n_time:
        length = int(rng.integers(low, high + 1))
        states[start : start + length] = state
        start += length
        state = 1 - state
    return states


def rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def switching_population(
    *,
    n_clusters: int = 3,
    neurons_per_cluster: int = 10,
    n_time: int = 500,
    dim: int = 2,
    dt_s: float = 0.5,
    dispersion: float = 10.0,
    baseline_log_count: float = 1.0,
    offset_sd: float = 0.3,
    loading_sd: float = 0.5,
    latent_radius: float = 1.0,
    rotation_period_bins: float = 25.0,
    mean_ar: float = 0.98,
    mean_noise_sd: float = 0.1,
    still_noise_sd: float = 0.02,
    rotation_noise_sd: float = 0.05,
    segment_bins: tuple[int, int] = (40, 90),
    region: str | Sequence[str] = "LP",
    prefix: str = "bicluster",
    seed: int = 0,
) -> xr.Dataset:
    """The paper's simulation as a planted piece (see the module docstring).

    ``region`` is one CCF acronym for all neurons, or one per cluster. Neurons are listed in a
    random order so that cluster membership cannot be read off the unit ids.
    """
    if dim != 2:
        raise ConfigError(
            "latent_dim: the rotation state is defined for dim = 2 latents per cluster"
        )
    rng = np.random.default_rng(seed)
    n_neurons = n_clusters * neurons_per_cluster
    regions = [region] * n_clusters if isinstance(region, str) else list(region)
    if len(regions) != n_clusters:
        raise ConfigError(f"region: needs one acronym or {n_clusters}, got {len(regions)}")

    states = alternating_states(n_time, segment_bins, rng)
    turn = rotation(2 * np.pi / rotation_period_bins)

    # Latents: each cluster starts on the circle of radius latent_radius at a random phase.
    phase = rng.uniform(0, 2 * np.pi, n_clusters)
    x = np.empty((n_clusters, n_time, dim))
    mu = np.empty((n_clusters, n_time))
    x_now = latent_radius * np.stack([np.cos(phase), np.sin(phase)], axis=-1)
    mu_now = mean_noise_sd / np.sqrt(1 - mean_ar**2) * rng.standard_normal(n_clusters)
    for t in range(n_time):
        if t > 0:
            moving = states[t] == 1
            noise_sd = rotation_noise_sd if moving else still_noise_sd
            if moving:
                x_now = x_now @ turn.T
            x_now = x_now + noise_sd * rng.standard_normal(x_now.shape)
            mu_now = mean_ar * mu_now + mean_noise_sd * rng.standard_normal(n_clusters)
        x[:, t], mu[:, t] = x_now, mu_now

    # Neurons: shuffled cluster labels, offsets, loadings.
    cluster = rng.permutation(np.repeat(np.arange(n_clusters), neurons_per_cluster))
    offset = baseline_log_count + offset_sd * rng.standard_normal(n_neurons)
    loading = loading_sd * rng.standard_normal((n_neurons, dim))
    log_mean = (
        offset[:, None] + mu[cluster] + np.einsum("nd,ntd->nt", loading, x[cluster])
    )  # (neuron, time)
    mean = np.exp(log_mean)
    counts = rng.negative_binomial(dispersion, dispersion / (dispersion + mean))

    neuron_ids = [f"{prefix}_{i:03d}" for i in range(n_neurons)]
    coords = {
        "neuron": neuron_ids,
        "time": (np.arange(n_time) + 0.5) * dt_s,
        "region": ("neuron", np.array(regions)[cluster].astype(str)),
        "cluster": np.arange(n_clusters),
        "dim": np.arange(dim),
    }
    piece = xr.Dataset(
        {
            "counts": (("neuron", "time"), counts.astype(np.int64)),
            "true_cluster": (("neuron",), cluster),
            "true_state": (("time",), states),
            "true_mean": (("cluster", "time"), mu),
            "true_latent": (("cluster", "time", "dim"), x),
            "true_offset": (("neuron",), offset),
            "true_loading": (("neuron", "dim"), loading),
            "true_dispersion": (("neuron",), np.full(n_neurons, float(dispersion))),
            "true_rate": (("neuron", "time"), mean / dt_s),
        },
        coords=coords,
        attrs={
            "dt_s": float(dt_s),
            "stimulus_name": "spontaneous",
            "state_names": ", ".join(f"{i}: {n}" for i, n in enumerate(STATE_NAMES)),
            "description": "clusters x switching linear dynamics (Wei et al. simulation)",
            "seed": int(seed),
        },
    )
    piece["counts"].attrs["units"] = "spikes per bin"
    piece["true_rate"].attrs["units"] = "Hz"
    piece["time"].attrs["units"] = "s"
    return piece
