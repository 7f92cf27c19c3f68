"""Lorenz-driven Poisson population in trials: the LFADS synthetic benchmark setting.

Sussillo et al. (2016, LFADS, "Inferring single-trial neural population dynamics") and Song et
al. ("Langevin Flows for Modeling Neural Latent Dynamics") evaluate latent-dynamics models on
spiking data generated from a 3-D Lorenz system: each condition starts the attractor from its own
initial point, the three z-scored state variables drive the log firing rates of a population
through a random linear readout, and every trial of a condition draws fresh Poisson spikes from the
same rates. Knowing the true rates and latents lets a model's inferred rates be scored directly.

``lorenz_trials(...)`` returns a *planted piece* for the simulated Allen session (see
``docs/data-model.md``, planted pieces): a trial block ``rate(trial, neuron, time)`` in Hz with
``time`` the bin centre relative to trial onset, bins of ``attrs["dt_s"]``, trial variable
``condition``, coords ``neuron`` (``lorenz_000``, ...) and ``region(neuron)``,
``attrs["stimulus_name"] = "lorenz_trials"``, and ground truth ``true_latent(trial, time, dim)``
and ``true_rate(trial, neuron, time)``. ``sample_counts(piece, seed)`` draws the Poisson counts
the latents stage benchmark trains on.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

# Classic chaotic parameters (Lorenz 1963), as in LFADS's synthetic data.
LORENZ_SIGMA = 10.0
LORENZ_RHO = 28.0
LORENZ_BETA = 8.0 / 3.0


def _lorenz_derivative(state: np.ndarray) -> np.ndarray:
    x, y, z = state[..., 0], state[..., 1], state[..., 2]
    return np.stack(
        [LORENZ_SIGMA * (y - x), x * (LORENZ_RHO - z) - y, x * y - LORENZ_BETA * z], axis=-1
    )


def integrate_lorenz(initial: np.ndarray, n_steps: int, step: float) -> np.ndarray:
    """RK4 trajectories of the Lorenz system: ``initial`` (..., 3) -> (..., n_steps, 3)."""
    state = np.asarray(initial, dtype=float)
    out = np.empty(state.shape[:-1] + (n_steps, 3))
    for t in range(n_steps):
        out[..., t, :] = state
        k1 = _lorenz_derivative(state)
        k2 = _lorenz_derivative(state + 0.5 * step * k1)
        k3 = _lorenz_derivative(state + 0.5 * step * k2)
        k4 = _lorenz_derivative(state + step * k3)
        state = state + step / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return out


def lorenz_trials(
    *,
    n_conditions: int = 40,
    trials_per_condition: int = 10,
    n_neurons: int = 40,
    n_time: int = 50,
    dt_s: float = 0.02,
    lorenz_step: float = 0.012,
    base_rate_hz: float = 15.0,
    readout_gain: float = 0.9,
    max_rate_hz: float = 200.0,
    region: str = "VISrl",
    seed: int = 0,
) -> xr.Dataset:
    """The Lorenz trial block (planted piece), seeded.

    Each condition's initial point is taken from a long burn-in run, so every trial starts on the
    attractor. ``lorenz_step`` is Lorenz time per bin: 50 bins x 0.012 covers about one loop of a
    lobe, enough structure for dynamics to matter. Log rates are ``log(base_rate_hz) + W z`` with
    ``z`` the latent z-scored over all conditions and time and ``W ~ N(0, readout_gain^2 / 3)``,
    so rates are log-normal around the base rate; ``max_rate_hz`` caps the rare extreme bins.
    """
    rng = np.random.default_rng(seed)
    # One long run on the attractor, then conditions start at random points along it.
    burn_in = integrate_lorenz(rng.normal(0.0, 1.0, 3) + [0.0, 0.0, 25.0], 3000, lorenz_step)
    starts = burn_in[rng.choice(np.arange(500, 3000), size=n_conditions, replace=False)]
    latent_by_condition = integrate_lorenz(starts, n_time, lorenz_step)  # (cond, time, 3)
    mean = latent_by_condition.reshape(-1, 3).mean(axis=0)
    std = latent_by_condition.reshape(-1, 3).std(axis=0)
    latent_by_condition = (latent_by_condition - mean) / std

    readout = rng.normal(0.0, readout_gain / np.sqrt(3.0), size=(3, n_neurons))
    log_rate = np.log(base_rate_hz) + latent_by_condition @ readout  # (cond, time, neuron)
    rate_by_condition = np.minimum(np.exp(log_rate), max_rate_hz)

    condition = np.repeat(np.arange(n_conditions), trials_per_condition)
    rate = rate_by_condition[condition].transpose(0, 2, 1)  # (trial, neuron, time)
    latent = latent_by_condition[condition]  # (trial, time, dim)

    neurons = [f"lorenz_{i:03d}" for i in range(n_neurons)]
    time = (np.arange(n_time) + 0.5) * dt_s
    coords = {
        "trial": np.arange(condition.size),
        "neuron": neurons,
        "time": time,
        "dim": ["x", "y", "z"],
        "region": ("neuron", [region] * n_neurons),
    }
    piece = xr.Dataset(
        {
            "rate": (("trial", "neuron", "time"), rate),
            "condition": ("trial", condition),
            "true_latent": (("trial", "time", "dim"), latent),
            "true_rate": (("trial", "neuron", "time"), rate.copy()),
            "true_readout": (("dim", "neuron"), readout),
        },
        coords=coords,
    )
    piece["rate"].attrs["units"] = "Hz"
    piece["true_rate"].attrs["units"] = "Hz"
    piece["time"].attrs["units"] = "s"
    piece["true_latent"].attrs["description"] = "z-scored Lorenz state (x, y, z) driving the rates"
    piece.attrs.update(
        {
            "dt_s": dt_s,
            "stimulus_name": "lorenz_trials",
            "generator": "neurodag.simulate.lorenz.lorenz_trials",
            "seed": seed,
            "lorenz_step": lorenz_step,
            "base_rate_hz": base_rate_hz,
            "readout_gain": readout_gain,
        }
    )
    return piece


def sample_counts(piece: xr.Dataset, seed: int = 0) -> xr.DataArray:
    """Poisson spike counts ``counts(trial, neuron, time)`` drawn from the piece's rates."""
    rng = np.random.default_rng(seed)
    expected = piece["rate"].values * piece.attrs["dt_s"]
    counts = rng.poisson(expected).astype(np.int64)
    return xr.DataArray(counts, coords=piece["rate"].coords, dims=piece["rate"].dims, name="counts")
