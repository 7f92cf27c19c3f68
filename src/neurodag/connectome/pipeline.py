"""The connectome stage end to end: homogenized worms in, dynamic functional connectome out."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from neurodag.connectome import affinity as aff
from neurodag.connectome.enrichment import anatomical_adjacency, enrichment
from neurodag.connectome.ntf import select_rank
from neurodag.connectome.sbm import fit_sbm, louvain
from neurodag.errors import InputError

log = logging.getLogger(__name__)


def select_neurons(activity: xr.DataArray, min_worms: int) -> list[str]:
    """Canonical neurons recorded (some finite sample) in at least ``min_worms`` worms."""
    recorded = np.isfinite(activity).any("time")
    counts = recorded.sum("worm")
    return [str(n) for n in activity["neuron"].values[counts.values >= min_worms]]


def affinity_tensor(
    ds: xr.Dataset, params: Mapping[str, Any], client=None, method: str | None = None
) -> xr.DataArray:
    """``affinity(pair, window, worm)`` of the worms in ``ds`` (NaN where not recorded)."""
    activity = ds["activity"]
    neurons = select_neurons(activity, params["min_worms"])
    if len(neurons) < 3:
        raise InputError(
            ds.encoding.get("source", "input"),
            "activity",
            f"only {len(neurons)} neurons recorded in >= {params['min_worms']} worms; need 3",
        )
    time = activity["time"].values
    dt = float(np.median(np.diff(time)))
    grid = aff.WindowGrid.from_seconds(len(time), dt, params["window_s"], params["step_s"])
    sub = activity.sel(neuron=neurons).transpose("worm", "time", "neuron").values
    if "valid_length" in ds:  # samples past a worm's valid length are padding, not data
        for w, n in enumerate(ds["valid_length"].values):
            sub[w, int(n) :] = np.nan
    kwargs = dict(
        method=method or params["affinity"],
        bandwidth=params["bandwidth"],
        min_valid_fraction=params["min_valid_fraction"],
    )
    if client is None:
        per_worm = [aff.worm_affinity(x, grid, **kwargs) for x in sub]
    else:
        futures = client.map(aff.worm_affinity, list(sub), grid=grid, **kwargs, pure=False)
        per_worm = client.gather(futures)
    i, j = aff.pair_index(len(neurons))
    names = np.array(neurons)
    return xr.DataArray(
        np.stack(per_worm, axis=-1),
        dims=("pair", "window", "worm"),
        coords={
            "pair": [f"{a}-{b}" for a, b in zip(names[i], names[j], strict=True)],
            "neuron_a": ("pair", names[i]),
            "neuron_b": ("pair", names[j]),
            "window": np.arange(len(grid.starts)),
            "window_time": ("window", grid.centres_s),
            "worm": ds["worm"].values,
        },
        attrs={
            "method": kwargs["method"],
            "window_s": grid.length * dt,
            "step_s": float(np.diff(grid.starts[:2])[0] * dt) if len(grid.starts) > 1 else 0.0,
            "description": "sliding-window pairwise affinity; NaN where a neuron is not recorded",
        },
    )


def pair_matrix(values: np.ndarray, n: int, observed: np.ndarray | None = None) -> np.ndarray:
    """A symmetric (n, n) matrix from per-pair values (NaN for pairs never observed)."""
    i, j = aff.pair_index(n)
    out = np.full((n, n), np.nan)
    v = np.where(observed, values, np.nan) if observed is not None else values
    out[i, j] = out[j, i] = v
    return out


def component_graph(
    pair_factor: np.ndarray, worm_factor: np.ndarray, pair_seen: np.ndarray, n: int
) -> np.ndarray:
    """A component's weighted neuron graph for the SBM: the square root of the component's
    modelled affinity for each pair, averaged over the worms that recorded the pair,
    ``sqrt(a_p * mean_{m sees p} c_m)`` (NaN for pairs seen in no worm).

    Why the worm average: the pair factor ``a_p`` alone is fitted from the worms that saw the
    pair, at the scale of the whole worm factor; a pair seen only in worms that barely express
    the component gets its loading from those worms' residual structure magnified by ``1 / c_m``,
    so the graph's blocks would follow which worms recorded each neuron. The modelled affinity
    ``a_p c_m`` is what the component contributes to the data actually recorded.

    Why the square root: the loading is non-negative and right-skewed, with a spread that grows
    with its level (a co-active group's pairs vary far more than the near-zero background); the
    Gaussian SBM assumes one variance per block pair, and the square root (the Anscombe-type
    variance-stabilising transform of a non-negative intensity) makes that assumption hold, so
    the background is not split into blocks by its noise level."""
    seen = pair_seen.astype(np.float64)
    count = seen.sum(axis=1)
    expressed = np.where(count > 0, seen @ worm_factor / np.maximum(count, 1), np.nan)
    return pair_matrix(np.sqrt(pair_factor * expressed), n)


def result_component_graph(result: xr.Dataset, component: int) -> np.ndarray:
    """:func:`component_graph` of one component of a connectome result."""
    return component_graph(
        result["pair_factor"].values[component].astype(np.float64),
        result["worm_factor"].values[component],
        np.isfinite(result["affinity"].values).any(axis=1),
        result.sizes["neuron"],
    )


def dynamic_connectome(
    ds: xr.Dataset,
    params: Mapping[str, Any],
    *,
    client=None,
    connectome: xr.Dataset | None = None,
) -> xr.Dataset:
    """Affinities, NTF, communities and enrichment of homogenized worms ``ds``."""
    affinity = affinity_tensor(ds, params, client)
    neurons = list(
        dict.fromkeys(np.concatenate([affinity.neuron_a.values, affinity.neuron_b.values]))
    )
    neurons = [n for n in ds["neuron"].values if n in set(neurons)]
    n = len(neurons)
    x = affinity.values
    pair_seen = np.isfinite(x).any(axis=1)  # (pair, worm)
    observed_pair = pair_seen.any(axis=1)
    log.info(
        "affinity tensor %s (%.0f%% observed); scanning ranks %s",
        x.shape,
        100 * np.isfinite(x).mean(),
        params["ranks"],
    )
    scan = select_rank(
        x,
        list(params["ranks"]),
        restarts=params["restarts"],
        min_similarity=params["min_similarity"],
        min_gain=params["min_gain"],
        error_margin=params["error_margin"],
        min_spread=params["min_worm_spread"],
        random_state=params["seed"],
        n_iter_max=params["n_iter_max"],
        tol=params["tol"],
    )
    fit = scan.best[scan.chosen]
    rank = scan.chosen
    log.info("chosen rank %d (relative error %.3f)", rank, fit.error)
    pair_f, time_f, worm_f = fit.factors
    # a pair seen in no worm keeps its random initial loading: it has no estimate
    pair_f = np.where(observed_pair[:, None], pair_f, np.nan)
    community = np.zeros((rank, n), dtype=np.int64)
    louvain_c = np.zeros((rank, n), dtype=np.int64)
    n_blocks = np.zeros(rank, dtype=np.int64)
    for r in range(rank):
        graph = component_graph(pair_f[:, r], worm_f[:, r], pair_seen, n)
        sbm, _ = fit_sbm(
            graph,
            max_blocks=params["max_blocks"],
            restarts=params["sbm_restarts"],
            random_state=params["seed"],
        )
        community[r] = sbm.labels
        n_blocks[r] = sbm.labels.max() + 1
        louvain_c[r] = louvain(
            np.nan_to_num(graph), resolution=params["louvain_resolution"], seed=params["seed"]
        )
    out = xr.Dataset(
        {
            "affinity": affinity,
            "pair_factor": (("component", "pair"), pair_f.T.astype(np.float32)),
            "time_factor": (("component", "window"), time_f.T),
            "worm_factor": (("component", "worm"), worm_f.T),
            "component_weight": ("component", fit.weights),
            "community": (("component", "neuron"), community),
            "louvain_community": (("component", "neuron"), louvain_c),
            "n_blocks": ("component", n_blocks),
            "rank_error": (("rank", "restart"), scan.errors),
            "rank_similarity": ("rank", scan.similarity),
            "rank_worm_spread": ("rank", scan.spread),
        },
        coords={
            "component": np.arange(rank),
            "neuron": neurons,
            "rank": scan.ranks,
            "restart": np.arange(scan.errors.shape[1]),
        },
        attrs={"rank": rank, "relative_error": fit.error},
    )
    out["community"].attrs["description"] = (
        "weighted SBM block of sqrt(pair_factor * mean worm_factor over the worms recording the "
        "pair) (variational EM, ICL); 0 = block with the highest within-block weight"
    )
    if connectome is not None:
        adjacency = anatomical_adjacency(connectome, neurons, params["anatomy_source"])
        rows = [
            enrichment(adjacency, community[r], n_perm=params["n_perm"], seed=params["seed"])
            for r in range(rank)
        ]
        for key in ("within", "between", "ratio", "p_value"):
            out[f"enrichment_{key}"] = ("component", np.array([row[key] for row in rows]))
    return out
