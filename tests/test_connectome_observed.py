"""The connectome stage holds affinities only for pairs recorded together, and its NTF touches
only observed entries (issue 20, item 5)."""

import numpy as np
import pytest
import xarray as xr

from neurodag.config import stage_defaults
from neurodag.connectome.affinity import WindowGrid, pair_id, pair_index, worm_affinity
from neurodag.connectome.ntf import ObservedTensor, non_negative_cp_hals, select_rank
from neurodag.connectome.pipeline import affinity_tensor, observed_tensor


def test_pair_id_numbers_pairs_in_pair_index_order():
    i, j = pair_index(7)
    np.testing.assert_array_equal(pair_id(i, j, 7), np.arange(21))


def worms_with_own_neurons(rng, worms=4, n=10, t=200):
    """Each worm records its own 5-7 of n neurons (the others NaN); neurons 0-2 co-activate."""
    activity = np.full((worms, t, n), np.nan)
    for w in range(worms):
        recorded = np.sort(rng.choice(n, rng.integers(5, 8), replace=False))
        x = rng.standard_normal((t, n))
        x[:, :3] += 2 * rng.standard_normal((t, 1))
        activity[w][:, recorded] = x[:, recorded]
    return xr.Dataset(
        {
            "activity": (("worm", "time", "neuron"), activity),
            "valid_length": ("worm", np.full(worms, t)),
        },
        coords={
            "worm": [f"w{k}" for k in range(worms)],
            "time": np.arange(t) * 0.5,
            "neuron": [f"N{k}" for k in range(n)],
        },
    )


def test_affinities_are_held_for_the_pairs_each_worm_recorded_only():
    rng = np.random.default_rng(0)
    ds = worms_with_own_neurons(rng)
    params = {**stage_defaults("connectome"), "window_s": 20.0, "step_s": 10.0, "min_worms": 1}
    out = affinity_tensor(ds, params)
    recorded = np.isfinite(ds["activity"].values).any(axis=1)  # (worm, neuron)
    per_worm = [k * (k - 1) // 2 for k in recorded.sum(axis=1)]
    assert out.sizes["entry"] == sum(per_worm)  # never all pairs x worms
    np.testing.assert_array_equal(np.bincount(out["entry_worm"].values), per_worm)
    # the pair axis is the union of the worms' pairs; every entry's pair has both neurons recorded
    names = list(ds["neuron"].values)
    a = [names.index(v) for v in out["neuron_a"].values]
    b = [names.index(v) for v in out["neuron_b"].values]
    together = recorded[:, a] & recorded[:, b]  # (worm, pair)
    assert together.any(axis=0).all() and out.sizes["pair"] == together.any(axis=0).sum()
    pairs, worms = out["entry_pair"].values, out["entry_worm"].values
    assert together[worms, pairs].all()
    # the values are each worm's affinities, as the dense per-worm layout has them
    grid = WindowGrid.from_seconds(ds.sizes["time"], 0.5, 20.0, 10.0)
    kept = recorded.any(axis=0)  # min_worms 1: every neuron some worm recorded
    assert out["affinity"].attrs["kept_neurons"] == kept.sum()
    dense = worm_affinity(ds["activity"].values[2][:, kept], grid)
    mine = worms == 2
    keys = out["pair_key"].values[pairs[mine]]
    np.testing.assert_allclose(out["affinity"].values[mine], dense[keys])
    assert np.isnan(np.delete(dense, keys, axis=0)).all()
    tensor = observed_tensor(out)
    assert tensor.shape == (out.sizes["pair"], out.sizes["window"], 4)
    np.testing.assert_array_equal(tensor.pair_key, out["pair_key"].values)


def planted(rng, gaps: bool):
    p, w, m, r = 120, 20, 5, 2
    a, b, c = rng.gamma(0.5, 1, (p, r)), rng.gamma(0.5, 1, (w, r)), rng.uniform(0.5, 1, (m, r))
    x = np.einsum("pr,wr,mr->pwm", a, b, c)
    seen = rng.random((p, m)) < 0.4
    seen[:10] = False  # pairs no worm recorded
    truth = x.copy()
    x = np.where(seen[:, None, :], x, np.nan)
    x[:, 16:, 4] = np.nan  # worm 4 ends early
    if gaps:  # a few masked windows inside recorded fibres
        rows = np.flatnonzero(seen[:, 1])[:6]
        x[rows, 3, 1] = np.nan
    return x, truth, seen


@pytest.mark.parametrize("gaps", [False, True])
def test_masked_fit_uses_observed_entries_only(gaps):
    """A planted rank-2 tensor, 60% of (pair, worm) unrecorded: the fit reproduces every observed
    entry, imputes masked windows inside recorded fibres, and gives pairs no worm recorded a zero
    loading, not a random one."""
    rng = np.random.default_rng(3)
    x, truth, seen = planted(rng, gaps)
    observed = ObservedTensor.from_dense(x)
    assert observed.pair.size == seen.sum()
    np.testing.assert_array_equal(observed.to_dense(), x)
    fit = non_negative_cp_hals(observed, 2, tol=1e-10, n_iter_max=3000, random_state=0)
    model = np.einsum("r,pr,wr,mr->pwm", fit.weights, *fit.factors)
    ok = np.isfinite(x)
    direct = np.linalg.norm((model - x)[ok]) / np.linalg.norm(x[ok])
    assert fit.error == pytest.approx(direct, rel=1e-9, abs=1e-12)
    assert fit.error < 1e-3
    if gaps:
        hole = seen[:, None, :] & ~ok & (np.arange(20) < 16)[None, :, None]
        assert hole.sum() == 6
        np.testing.assert_allclose(model[hole], truth[hole], rtol=1e-2)
    assert (fit.factors[0][:10] == 0).all()
    dense = non_negative_cp_hals(x, 2, tol=1e-10, n_iter_max=3000, random_state=0)
    np.testing.assert_allclose(dense.factors[1], fit.factors[1])


def test_random_starts_follow_the_pair_not_the_other_pairs_recorded():
    """With pair keys, a pair's random start is its own row of a draw over all keys: dropping the
    pairs no worm recorded from the pair axis leaves the fit as it is."""
    rng = np.random.default_rng(4)
    x, _, seen = planted(rng, gaps=False)
    keep = seen.any(axis=1)
    full = ObservedTensor.from_dense(x)
    sub = ObservedTensor.from_dense(x[keep])
    sub.pair_key, sub.n_pair_keys = np.flatnonzero(keep), len(x)
    a = non_negative_cp_hals(full, 2, n_iter_max=50, random_state=7)
    b = non_negative_cp_hals(sub, 2, n_iter_max=50, random_state=7)
    np.testing.assert_allclose(a.factors[0][keep], b.factors[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.factors[1], b.factors[1], rtol=1e-9)


def test_rank_scan_on_dask_workers_equals_the_serial_scan():
    from neurodag.compute import dask_client

    rng = np.random.default_rng(5)
    observed = ObservedTensor.from_dense(planted(rng, gaps=True)[0])
    kwargs = dict(restarts=2, tol=1e-7, n_iter_max=200, random_state=1)
    serial = select_rank(observed, [1, 2, 3], **kwargs)
    with dask_client({"cluster": "local", "workers": 1}, threads=1) as client:
        parallel = select_rank(observed, [1, 2, 3], client=client, **kwargs)
    np.testing.assert_array_equal(serial.errors, parallel.errors)
    assert serial.chosen == parallel.chosen
