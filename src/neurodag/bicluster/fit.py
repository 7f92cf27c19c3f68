"""Fit the bi-clustering model with parallel chains (Dask) and summarise the posterior.

``fit(counts, settings, n_chains, client)`` runs the chains of :mod:`.sampler` (on a Dask client
when given, one task per chain) and returns an ``xr.Dataset`` with co-clustering matrices, point
estimates ``neuron_cluster(neuron)`` and ``state(time)``, latent trajectories with 95% credible
bands (relabelled to the point estimate), and R-hat / ESS of the continuous parameters.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from neurodag.bicluster import summary
from neurodag.bicluster.sampler import Settings, run_chain


def run_chains(counts: np.ndarray, settings: Settings, n_chains: int, client=None) -> list[dict]:
    seeds = [settings.seed * 1000 + c for c in range(n_chains)]
    if client is None:
        return [
            run_chain(counts, settings, s, progress_desc=f"chain {i}") for i, s in enumerate(seeds)
        ]
    futures = [client.submit(run_chain, counts, settings, s, pure=False) for s in seeds]
    return client.gather(futures)


def summarise(counts: np.ndarray, settings: Settings, draws: list[dict]) -> xr.Dataset:
    z = np.concatenate([d["z"] for d in draws])
    s = np.concatenate([d["s"] for d in draws])
    neuron_cluster = summary.point_estimate(z, settings.n_clusters_max)
    state = summary.point_estimate(s, settings.n_states_max)
    h = summary.relabelled_trajectories(z, np.concatenate([d["h"] for d in draws]), neuron_cluster)
    # Latent means are identified up to the neurons' offsets; report them with credible bands.
    lo, med, hi = np.nanpercentile(h, [2.5, 50, 97.5], axis=0)
    chains = {
        "dispersion": np.stack([d["dispersion"] for d in draws]),
        "log_rate": np.stack([d["log_rate"] for d in draws]),
        "n_clusters": np.stack([d["n_clusters"] for d in draws]).astype(float),
        "n_states": np.stack([d["n_states"] for d in draws]).astype(float),
    }
    idata, rhat, ess = summary.diagnostics(chains)
    log_rate_mean = chains["log_rate"].mean(axis=(0, 1))
    ds = xr.Dataset(
        {
            "neuron_coclustering": (("neuron", "neuron2"), summary.coclustering(z)),
            "time_coclustering": (("time", "time2"), summary.coclustering(s)),
            "neuron_cluster": (("neuron",), neuron_cluster),
            "state": (("time",), state),
            "latent": (("cluster", "time", "factor"), med),
            "latent_lower": (("cluster", "time", "factor"), lo),
            "latent_upper": (("cluster", "time", "factor"), hi),
            "rate_fitted": (("neuron", "time"), np.exp(log_rate_mean)),
            "dispersion": (("neuron",), chains["dispersion"].mean(axis=(0, 1))),
            "n_clusters_draws": (("chain", "draw"), chains["n_clusters"]),
            "n_states_draws": (("chain", "draw"), chains["n_states"]),
            "rhat_dispersion": (("neuron",), rhat["dispersion"].values),
            "ess_dispersion": (("neuron",), ess["dispersion"].values),
            "rhat_log_rate": (("neuron", "time"), rhat["log_rate"].values),
            "ess_log_rate": (("neuron", "time"), ess["log_rate"].values),
        },
        coords={"factor": ["mean"] + [f"x{j}" for j in range(settings.latent_dim)]},
    )
    ds["latent"].attrs["description"] = "posterior median of (mu_k, x_k), relabelled"
    for name in ("dispersion", "log_rate"):
        ds.attrs[f"rhat_{name}_max"] = float(np.nanmax(rhat[name].values))
        ds.attrs[f"ess_{name}_min"] = float(np.nanmin(ess[name].values))
    ds.attrs["n_chains"] = len(draws)
    ds.attrs["n_draws_per_chain"] = int(chains["dispersion"].shape[1])
    del idata
    return ds


def fit(counts: np.ndarray, settings: Settings, n_chains: int = 2, client=None) -> xr.Dataset:
    draws = run_chains(np.asarray(counts), settings, n_chains, client)
    return summarise(np.asarray(counts), settings, draws)
