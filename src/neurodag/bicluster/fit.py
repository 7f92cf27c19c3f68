"""Fit the bi-clustering model with parallel chains (Dask) and summarise the posterior.

``fit(counts, settings, n_chains, client)`` runs the chains of :mod:`.sampler` (on a Dask client
when given, one task per chain) and returns an ``xr.Dataset`` with co-clustering matrices, point
estimates ``neuron_cluster(neuron)`` and ``state(time)``, latent trajectories with 95% credible
bands (relabelled to the point estimate), and the convergence diagnostics.

Diagnostics (rank-normalised split R-hat and bulk ESS, Vehtari et al. 2021, as ArviZ computes
them) are computed on label-invariant quantities only, so label switching between chains does
not count as non-convergence and a chain stuck in one labelling cannot hide behind it: each
neuron's dispersion; the log rate of every neuron at a stated subset of time bins (every k-th,
at most 50: the full neuron x bin grid cost as much as the chains at real size); the neuron
co-clustering indicator of every pair; the state co-clustering indicator of every pair of those
bins; the state occupancy sorted by size; the numbers of clusters and states. The worst values
per quantity go to the attributes, ``not_converged`` names those past R-hat 1.05 or ESS 100.

The chains run a segment at a time: after burn-in plus ``check_every`` iterations, and every
``check_every`` iterations after that, the diagnostics of all draws kept so far are computed,
and the chains stop at the first check where every quantity passes, or at ``n_iterations``
(an ESS-based stopping rule in the sense of Vats, Flegal & Jones 2019, Biometrika 106:321,
with R-hat as well). Stopping this way does not change a chain: its draws are those of an
uninterrupted run of the same seed, cut at the check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import xarray as xr

from neurodag.bicluster import summary
from neurodag.bicluster.sampler import Chain, Settings, advance_chain, join_draws

log = logging.getLogger(__name__)


def run_chains(
    counts: np.ndarray, settings: Settings, n_chains: int, submit: Callable | None = None
) -> tuple[list[dict], Assessment | None]:
    """Run the chains (seed ``settings.seed * 1000 + c``) a segment at a time, checking
    convergence between segments (see the module); returns each chain's draws and the
    assessment of the last check (None when ``check_every`` is 0: no checks).

    ``submit(fn, *args)`` returns a future (``concurrent.futures.Executor.submit``, or a Dask
    client's ``submit``); None runs the chains here, in turn.
    """

    def each(fn, calls):
        if submit is None:
            return [fn(*args) for args in calls]
        return [future.result() for future in [submit(fn, *args) for args in calls]]

    chains = each(Chain, [(counts, settings, settings.seed * 1000 + c) for c in range(n_chains)])
    segments: list[list[dict]] = [[] for _ in chains]
    every = settings.check_every
    step = settings.burn_in + every if every else settings.n_iterations
    assessment = None
    while True:
        results = each(advance_chain, [(chain, step) for chain in chains])
        chains = [chain for chain, _ in results]
        for chain_segments, (_, draws) in zip(segments, results, strict=True):
            chain_segments.append(draws)
        draws = [join_draws(chain_segments) for chain_segments in segments]
        if not every or draws[0]["n_kept"] == 0:
            return draws, None
        assessment = assess(draws, settings)
        done = chains[0].done or not assessment.not_converged
        log.info(
            "bicluster: %d of at most %d iterations per chain (%d chains): worst R-hat %.3f, "
            "smallest ESS %.1f%s",
            chains[0].iteration, settings.n_iterations, n_chains, assessment.rhat_max,
            assessment.ess_min,
            "" if done else f" ({', '.join(assessment.not_converged)} not yet); continuing",
        )  # fmt: skip
        if done:
            return draws, assessment
        step = every


def dask_submit(client) -> Callable:
    """A Dask client's ``submit`` for :func:`run_chains` (tasks are not pure: chains draw)."""
    return partial(client.submit, pure=False)


# Label-invariant quantities whose convergence is diagnosed, in the order they are reported.
DIAGNOSED = (
    "dispersion",
    "log_rate",
    "neuron_coclustering",
    "time_coclustering",
    "state_occupancy",
    "n_clusters",
    "n_states",
)
RHAT_LIMIT, ESS_LIMIT = 1.05, 100.0


def diagnosed_quantities(draws: list[dict], settings: Settings) -> dict[str, np.ndarray]:
    """The label-invariant quantities of each chain's draws, (chain, draw, ...): dispersions,
    log rates at the diagnostic bins, neuron co-clustering indicators of every pair, state
    co-clustering indicators of every pair of diagnostic bins, the sorted state occupancy, and
    the numbers of clusters and states."""
    z = np.stack([d["z"] for d in draws])
    s = np.stack([d["s"] for d in draws])
    bins = draws[0]["diagnostic_bins"]
    neuron_pairs = np.triu_indices(z.shape[-1], 1)
    bin_pairs = tuple(bins[side] for side in np.triu_indices(len(bins), 1))
    return {
        "dispersion": np.stack([d["dispersion"] for d in draws]),
        "log_rate": np.stack([d["log_rate"] for d in draws]),
        "neuron_coclustering": summary.pair_indicators(z, neuron_pairs),
        "time_coclustering": summary.pair_indicators(s, bin_pairs),
        "state_occupancy": summary.sorted_occupancy(s, settings.n_states_max),
        "n_clusters": np.stack([d["n_clusters"] for d in draws]).astype(float),
        "n_states": np.stack([d["n_states"] for d in draws]).astype(float),
    }


@dataclass
class Assessment:
    """Convergence diagnostics of the kept draws: the diagnosed quantities (chain, draw, ...),
    their (R-hat, ESS) per quantity, and the worst values per quantity."""

    quantities: dict[str, np.ndarray]
    diagnostics: dict[str, tuple[np.ndarray, np.ndarray]]
    worst_rhat: dict[str, float]
    worst_ess: dict[str, float]

    @property
    def rhat_max(self) -> float:
        return max(self.worst_rhat.values())

    @property
    def ess_min(self) -> float:
        return float(np.nanmin(list(self.worst_ess.values())))

    @property
    def not_converged(self) -> list[str]:
        return [
            name
            for name in DIAGNOSED
            if self.worst_rhat[name] > RHAT_LIMIT or self.worst_ess[name] < ESS_LIMIT
        ]


def assess(draws: list[dict], settings: Settings) -> Assessment:
    quantities = diagnosed_quantities(draws, settings)
    diag = summary.convergence(quantities)
    worst_rhat, worst_ess = {}, {}
    for name in DIAGNOSED:
        rhat, ess = diag[name]
        worst_rhat[name] = float(np.nanmax(rhat)) if not np.isnan(rhat).all() else float("nan")
        worst_ess[name] = float(np.nanmin(ess)) if np.isfinite(ess).any() else float("nan")
    return Assessment(quantities, diag, worst_rhat, worst_ess)


def summarise(
    counts: np.ndarray, settings: Settings, draws: list[dict], assessment: Assessment | None = None
) -> xr.Dataset:
    z = np.concatenate([d["z"] for d in draws])
    s = np.concatenate([d["s"] for d in draws])
    neuron_cluster = summary.point_estimate(z, settings.n_clusters_max)
    state = summary.point_estimate(s, settings.n_states_max)
    stride = draws[0]["latent_stride"]  # latents were kept every stride-th draw
    h = summary.relabelled_trajectories(
        np.concatenate([d["z"][::stride] for d in draws]),
        np.concatenate([d["h"] for d in draws]),
        neuron_cluster,
    )
    # Latent means are identified up to the neurons' offsets; report them with credible bands.
    lo, med, hi = np.nanpercentile(h, [2.5, 50, 97.5], axis=0)
    del h
    assessment = assessment or assess(draws, settings)
    quantities, diag = assessment.quantities, assessment.diagnostics
    bins = draws[0]["diagnostic_bins"]
    n_neurons = z.shape[1]
    pair_rhat = np.full((n_neurons, n_neurons), np.nan)
    pair_ess = np.full((n_neurons, n_neurons), np.nan)
    iu = np.triu_indices(n_neurons, 1)
    for matrix, values in ((pair_rhat, diag["neuron_coclustering"][0]),
                           (pair_ess, diag["neuron_coclustering"][1])):  # fmt: skip
        matrix[iu] = values
        matrix[iu[::-1]] = values
    log_rate_mean = sum(d["log_rate_sum"] for d in draws) / sum(d["n_kept"] for d in draws)
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
            "dispersion": (("neuron",), quantities["dispersion"].mean(axis=(0, 1))),
            "n_clusters_draws": (("chain", "draw"), quantities["n_clusters"]),
            "n_states_draws": (("chain", "draw"), quantities["n_states"]),
            "rhat_dispersion": (("neuron",), diag["dispersion"][0]),
            "ess_dispersion": (("neuron",), diag["dispersion"][1]),
            "rhat_log_rate": (("neuron", "diagnostic_bin"), diag["log_rate"][0]),
            "ess_log_rate": (("neuron", "diagnostic_bin"), diag["log_rate"][1]),
            "rhat_neuron_coclustering": (("neuron", "neuron2"), pair_rhat),
            "ess_neuron_coclustering": (("neuron", "neuron2"), pair_ess),
            "rhat_state_occupancy": (("state_rank",), diag["state_occupancy"][0]),
            "ess_state_occupancy": (("state_rank",), diag["state_occupancy"][1]),
        },
        coords={
            "factor": ["mean"] + [f"x{j}" for j in range(settings.latent_dim)],
            "diagnostic_bin": bins,
        },
    )
    ds["latent"].attrs["description"] = (
        f"posterior median of (mu_k, x_k), relabelled, from every {stride}-th kept draw"
    )
    ds["diagnostic_bin"].attrs["description"] = (
        "time-bin indices whose log rates (every neuron) and pairwise state co-clustering are "
        "diagnosed: every k-th bin, at most 50"
    )
    for name in DIAGNOSED:
        ds.attrs[f"rhat_{name}_max"] = assessment.worst_rhat[name]
        ds.attrs[f"ess_{name}_min"] = assessment.worst_ess[name]
    ds.attrs["rhat_max"] = assessment.rhat_max
    ds.attrs["ess_min"] = assessment.ess_min
    ds.attrs["not_converged"] = ", ".join(assessment.not_converged)
    ds.attrs["diagnostics"] = (
        f"rank-normalised split R-hat and bulk ESS (Vehtari et al. 2021, ArviZ) over "
        f"{len(draws)} chains x {quantities['dispersion'].shape[1]} draws of label-invariant "
        f"quantities: per-neuron dispersion, log rate of every neuron at {len(bins)} time bins "
        f"(every {int(bins[1] - bins[0]) if len(bins) > 1 else 1}-th), neuron co-clustering "
        f"indicators of every pair, state co-clustering indicators of every pair of those bins, "
        f"sorted state occupancy, numbers of clusters and states; limits R-hat <= {RHAT_LIMIT}, "
        f"ESS >= {ESS_LIMIT:g}; ESS ignores quantities constant in every draw"
    )
    ds.attrs["n_chains"] = len(draws)
    ds.attrs["n_draws_per_chain"] = int(quantities["dispersion"].shape[1])
    # the chains stop at the first convergence check they pass (at most n_iterations)
    ds.attrs["n_iterations_per_chain"] = settings.burn_in + ds.attrs["n_draws_per_chain"] * (
        settings.thin
    )
    return ds


def fit(counts: np.ndarray, settings: Settings, n_chains: int = 2, client=None) -> xr.Dataset:
    counts = np.asarray(counts)
    submit = dask_submit(client) if client is not None else None
    draws, assessment = run_chains(counts, settings, n_chains, submit)
    return summarise(counts, settings, draws, assessment)
