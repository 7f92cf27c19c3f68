"""The connectome stage end to end: homogenized worms in, dynamic functional connectome out."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from neurodag.connectome import affinity as aff
from neurodag.connectome.enrichment import anatomical_adjacency, enrichment
from neurodag.connectome.ntf import ObservedTensor, RankScan, select_rank
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
) -> xr.Dataset:
    """The affinities of the worms in ``ds`` over the pairs each worm recorded.

    ``affinity(entry, window)``: one entry per (pair, worm) recorded together, ``entry_pair`` and
    ``entry_worm`` its positions on ``pair`` and ``worm`` (entries sorted by worm); ``pair`` holds
    the pairs of kept neurons recorded together in some worm. NaN marks masked windows."""
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
        per_worm = [aff.worm_pair_affinity(x, grid, **kwargs) for x in sub]
    else:
        traces = client.scatter(list(sub))  # one worm's traces per task, not in the graph
        futures = client.map(aff.worm_pair_affinity, traces, grid=grid, **kwargs, pure=False)
        per_worm = client.gather(futures)
    del sub
    ids = [p for p, _ in per_worm]
    pairs = np.unique(np.concatenate(ids))  # recorded together in some worm
    i, j = aff.pair_index(len(neurons))
    names = np.array(neurons)
    values = np.concatenate([v for _, v in per_worm]) if per_worm else np.zeros((0, 0))
    entry_pair = np.concatenate([np.searchsorted(pairs, p) for p in ids])
    entry_worm = np.repeat(np.arange(len(per_worm)), [p.size for p in ids])
    del per_worm
    affinity = xr.DataArray(
        values,
        dims=("entry", "window"),
        attrs={
            "method": kwargs["method"],
            "window_s": grid.length * dt,
            "step_s": float(np.diff(grid.starts[:2])[0] * dt) if len(grid.starts) > 1 else 0.0,
            "description": "sliding-window pairwise affinity of each (pair, worm) recorded "
            "together (entry_pair, entry_worm); NaN in masked windows",
            "kept_neurons": len(neurons),
        },
    )
    return xr.Dataset(
        {
            "affinity": affinity,
            "entry_pair": ("entry", entry_pair.astype(np.int32)),
            "entry_worm": ("entry", entry_worm.astype(np.int32)),
        },
        coords={
            "pair": [f"{a}-{b}" for a, b in zip(names[i[pairs]], names[j[pairs]], strict=True)],
            "neuron_a": ("pair", names[i[pairs]]),
            "neuron_b": ("pair", names[j[pairs]]),
            "pair_key": ("pair", pairs.astype(np.int32)),
            "window": np.arange(len(grid.starts)),
            "window_time": ("window", grid.centres_s),
            "worm": ds["worm"].values,
        },
    )


def observed_tensor(result: xr.Dataset) -> ObservedTensor:
    """The ``(pair, window, worm)`` tensor of a result's ``affinity(entry, window)`` (with the
    pairs' numbers among all pairs of the kept neurons, ``pair_key``, when it holds them)."""
    keys = result["pair_key"].values if "pair_key" in result.coords else None
    n_kept = result["affinity"].attrs.get("kept_neurons")
    return ObservedTensor(
        result["affinity"].values,
        result["entry_pair"].values,
        result["entry_worm"].values,
        (result.sizes["pair"], result.sizes["window"], result.sizes["worm"]),
        pair_key=keys if n_kept is not None else None,
        n_pair_keys=int(n_kept) * (int(n_kept) - 1) // 2 if n_kept is not None else None,
    )


def component_graph(
    pair_factor: np.ndarray,
    worm_factor: np.ndarray,
    entry_pair: np.ndarray,
    entry_worm: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray],
    n: int,
) -> np.ndarray:
    """A component's weighted neuron graph for the SBM: the square root of the component's
    modelled affinity for each pair, averaged over the worms that recorded the pair,
    ``sqrt(a_p * mean_{m sees p} c_m)`` (NaN for pairs seen in no worm).

    ``entry_pair``/``entry_worm`` list the (pair, worm) recorded together; ``pairs`` gives each
    pair's two neurons (indices among n).

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
    n_pair = len(pair_factor)
    count = np.bincount(entry_pair, minlength=n_pair)
    total = np.bincount(entry_pair, weights=np.asarray(worm_factor)[entry_worm], minlength=n_pair)
    expressed = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    out = np.full((n, n), np.nan)
    a, b = pairs
    out[a, b] = out[b, a] = np.sqrt(pair_factor * expressed)
    return out


def pair_neurons(ds: xr.Dataset, neurons) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's two neurons (``neuron_a``, ``neuron_b``) as positions in ``neurons``."""
    index = {str(name): k for k, name in enumerate(neurons)}
    return tuple(
        np.array([index[str(v)] for v in ds[side].values], dtype=np.int64)
        for side in ("neuron_a", "neuron_b")
    )


def result_component_graph(result: xr.Dataset, component: int) -> np.ndarray:
    """:func:`component_graph` of one component of a connectome result."""
    return component_graph(
        result["pair_factor"].values[component].astype(np.float64),
        result["worm_factor"].values[component],
        result["entry_pair"].values,
        result["entry_worm"].values,
        pair_neurons(result, result["neuron"].values),
        result.sizes["neuron"],
    )


def fit_components(tensor: ObservedTensor, params: Mapping[str, Any], client=None) -> RankScan:
    """The rank scan of :func:`~neurodag.connectome.ntf.select_rank` with the stage's params."""
    return select_rank(
        tensor,
        list(params["ranks"]),
        restarts=params["restarts"],
        min_similarity=params["min_similarity"],
        min_gain=params["min_gain"],
        error_margin=params["error_margin"],
        min_spread=params["min_worm_spread"],
        random_state=params["seed"],
        client=client,
        n_iter_max=params["n_iter_max"],
        tol=params["tol"],
    )


def communities(
    fit, affinity: xr.Dataset, neurons: list[str], params: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per component: weighted-SBM blocks, Louvain communities and the SBM's block count."""
    rank = len(fit.weights)
    n = len(neurons)
    pair_f, _, worm_f = fit.factors
    pairs = pair_neurons(affinity, neurons)
    entry_pair, entry_worm = affinity["entry_pair"].values, affinity["entry_worm"].values
    community = np.zeros((rank, n), dtype=np.int64)
    louvain_c = np.zeros((rank, n), dtype=np.int64)
    n_blocks = np.zeros(rank, dtype=np.int64)
    for r in range(rank):
        graph = component_graph(pair_f[:, r], worm_f[:, r], entry_pair, entry_worm, pairs, n)
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
    return community, louvain_c, n_blocks


def connectome_result(
    affinity: xr.Dataset,
    neurons: list[str],
    scan: RankScan,
    community: np.ndarray,
    louvain_c: np.ndarray,
    n_blocks: np.ndarray,
) -> xr.Dataset:
    """The stage's result: affinities, the chosen rank's factors, communities, rank scan."""
    fit = scan.best[scan.chosen]
    rank = scan.chosen
    pair_f, time_f, worm_f = fit.factors
    out = xr.Dataset(
        {
            **affinity.data_vars,
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
            **affinity.coords,
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
    return out


def dynamic_connectome(
    ds: xr.Dataset,
    params: Mapping[str, Any],
    *,
    client=None,
    connectome: xr.Dataset | None = None,
) -> xr.Dataset:
    """Affinities, NTF, communities and enrichment of homogenized worms ``ds``."""
    affinity = affinity_tensor(ds, params, client)
    seen = set(affinity.neuron_a.values) | set(affinity.neuron_b.values)
    neurons = [str(n) for n in ds["neuron"].values if n in seen]
    tensor = observed_tensor(affinity)
    n_pair, n_window, n_worm = tensor.shape
    log.info(
        "affinities: %d (pair, worm) entries recorded together x %d windows (%d pairs x %d "
        "worms; %.0f%% of all pairs of the %d neurons x worms); scanning ranks %s",
        tensor.pair.size,
        n_window,
        n_pair,
        n_worm,
        100 * tensor.pair.size / max(len(neurons) * (len(neurons) - 1) // 2 * n_worm, 1),
        len(neurons),
        params["ranks"],
    )
    scan = fit_components(tensor, params, client)
    fit = scan.best[scan.chosen]
    log.info("chosen rank %d (relative error %.3f)", scan.chosen, fit.error)
    community, louvain_c, n_blocks = communities(fit, affinity, neurons, params)
    out = connectome_result(affinity, neurons, scan, community, louvain_c, n_blocks)
    if connectome is not None:
        adjacency = anatomical_adjacency(connectome, neurons, params["anatomy_source"])
        rows = [
            enrichment(adjacency, community[r], n_perm=params["n_perm"], seed=params["seed"])
            for r in range(scan.chosen)
        ]
        for key in ("within", "between", "ratio", "p_value"):
            out[f"enrichment_{key}"] = ("component", np.array([row[key] for row in rows]))
    return out
