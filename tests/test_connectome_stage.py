"""Connectome stage (Dyballa et al.): affinities, masked NTF, weighted SBM, enrichment."""

import numpy as np
import pytest
import xarray as xr

from neurodag.connectome.affinity import WindowGrid, pair_index, worm_affinity
from neurodag.connectome.benchmark_graphs import weighted_lfr
from neurodag.connectome.dcsbm import fit_dcsbm
from neurodag.connectome.enrichment import enrichment
from neurodag.connectome.ntf import (
    factor_similarity,
    non_negative_cp_hals,
    select_rank,
    worm_spread,
)
from neurodag.connectome.pipeline import component_graph
from neurodag.connectome.sbm import fit_sbm
from neurodag.connectome.validate import (
    assortative_labels,
    planted_conditions,
    validate_against_truth,
)
from neurodag.partitions import nmi


def test_affinity_masks_absent_neurons_and_rewards_coactivation():
    rng = np.random.default_rng(0)
    t, n = 200, 5
    shared = rng.standard_normal(t)
    traces = rng.standard_normal((t, n))
    traces[:, 0] = shared + 0.1 * rng.standard_normal(t)
    traces[:, 1] = shared + 0.1 * rng.standard_normal(t)
    traces[:, 4] = np.nan  # not recorded
    grid = WindowGrid.from_seconds(t, 1.0, 40.0, 20.0)
    for method in ("kernel", "abs_correlation"):
        a = worm_affinity(traces, grid, method=method)
        i, j = np.triu_indices(n, 1)
        absent = (i == 4) | (j == 4)
        assert np.isnan(a[absent]).all() and np.isfinite(a[~absent]).all()
        pair01 = np.flatnonzero((i == 0) & (j == 1))[0]
        others = a[~absent & ~((i == 0) & (j == 1))]
        assert a[pair01].min() > others.max()
    kernel = worm_affinity(traces, grid, method="kernel", bandwidth=0.5)
    corr = worm_affinity(traces, grid, method="abs_correlation")
    noise = ~((i == 0) & (j == 1)) & ~((i == 4) | (j == 4))
    assert kernel[noise].mean() < corr[noise].mean()  # the kernel suppresses chance correlation


def _planted_tensor(rng, missing):
    p, w, m, r = 300, 30, 6, 3
    a = rng.gamma(0.3, 1, (p, r))
    b = rng.gamma(0.5, 1, (w, r))
    c = rng.uniform(0.5, 1, (m, r))
    x = np.einsum("pr,wr,mr->pwm", a, b, c)
    if missing:
        seen = rng.random((p, m)) < 0.5
        x = np.where(seen[:, None, :], x, np.nan)
    return x, b


@pytest.mark.parametrize("missing", [False, True])
def test_masked_hals_recovers_planted_factors(missing):
    rng = np.random.default_rng(1)
    x, b = _planted_tensor(rng, missing)
    fit = non_negative_cp_hals(x, 3, tol=1e-9, n_iter_max=1000, random_state=0)
    assert fit.error < 1e-3
    corr = np.corrcoef(fit.factors[1].T, b.T)[:3, 3:]
    assert np.abs(corr).max(axis=1).min() > 0.99
    again = non_negative_cp_hals(x, 3, tol=1e-9, n_iter_max=1000, random_state=5)
    assert factor_similarity(fit, again) > 0.95


def test_rank_selection_rejects_a_component_carried_by_one_worm():
    """Three components shared by all worms plus one carried by worm 0 alone: with the worm-spread
    rule the scan stops at the shared rank; without it the single-worm component is kept."""
    rng = np.random.default_rng(3)
    p, w, m = 200, 30, 8
    a = rng.gamma(0.3, 1, (p, 4))
    b = rng.gamma(0.5, 1, (w, 4))
    c = np.column_stack([rng.uniform(0.5, 1, (m, 3)), np.eye(m)[0]])  # weakest: enters last
    x = np.einsum("pr,wr,mr->pwm", a, b, c) + 0.02 * rng.random((p, w, m))
    kwargs = dict(restarts=3, tol=1e-7, n_iter_max=500, random_state=0)
    shared = select_rank(x, [1, 2, 3, 4], min_spread=0.5, **kwargs)
    assert shared.chosen == 3
    assert shared.spread[2] > 0.8 and shared.spread[3] < 0.3
    spread = worm_spread(shared.best[4])
    assert np.sort(spread)[0] == pytest.approx(1 / m, abs=0.05)
    assert select_rank(x, [1, 2, 3, 4], min_spread=0.0, **kwargs).chosen == 4


def test_replicability_counts_restarts_that_reach_the_best_error():
    """Similarity is measured among the restarts within error_margin of the best error."""
    rng = np.random.default_rng(4)
    x, _ = _planted_tensor(rng, missing=False)
    scan = select_rank(x, [3], restarts=3, tol=1e-9, n_iter_max=1000, error_margin=1e-3)
    assert scan.similarity[0] > 0.95
    # with no margin the best basin is reached once only: no evidence of replication
    strict = select_rank(x, [3], restarts=3, tol=1e-9, n_iter_max=1000, error_margin=-1.0)
    assert strict.similarity[0] == 0.0


def test_sbm_finds_planted_blocks_and_their_number():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], [15, 15, 20])
    mean = np.where(labels[:, None] == labels[None, :], 1.0, 0.2)
    mean[labels == 2][:, labels == 2] = 0.2  # a background block
    w = mean + 0.3 * rng.standard_normal(mean.shape)
    w = (w + w.T) / 2
    fit, icl = fit_sbm(w, max_blocks=6)
    assert nmi(labels, fit.labels) > 0.95
    assert fit.labels.max() + 1 == 3
    assert max(icl, key=icl.get) == 3


@pytest.mark.parametrize(("mu_t", "mu_w"), [(0.2, 0.2), (0.5, 0.5), (0.75, 0.25)])
def test_weighted_lfr_has_the_requested_degree_and_mixing(mu_t, mu_w):
    w, labels = weighted_lfr(mu_t=mu_t, mu_w=mu_w, seed=3)
    assert w.shape == (125, 125) and np.allclose(w, w.T) and (np.diag(w) == 0).all()
    edge = w > 0
    same = labels[:, None] == labels[None, :]
    assert 18 < edge.sum(1).mean() < 30  # requested 25; stubs inside small communities are lost
    assert abs((edge & ~same).sum() / edge.sum() - mu_t) < 0.08
    assert abs(w[~same].sum() / w.sum() - mu_w) < 0.08


def test_weight_layer_finds_blocks_that_only_the_weights_carry():
    """Edges uniformly random, weights heavier within blocks: only the weighted model sees them."""
    rng = np.random.default_rng(6)
    labels = np.repeat([0, 1, 2], 30)
    same = labels[:, None] == labels[None, :]
    a = np.triu(rng.random(same.shape) < 0.3, 1)
    w = a * rng.exponential(np.where(same, 5.0, 1.0))
    w = w + w.T
    weighted, _ = fit_dcsbm(w, max_blocks=5, restarts=2)
    assert weighted.labels.max() == 2 and nmi(labels, weighted.labels) > 0.85
    edges_only, _ = fit_dcsbm(w, max_blocks=5, restarts=2, weight_model="none")
    assert edges_only.labels.max() == 0


def test_enrichment_detects_structure_and_not_chance():
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1], 20)
    same = labels[:, None] == labels[None, :]
    adjacency = rng.random((40, 40)) < np.where(same, 0.5, 0.05)
    adjacency = np.triu(adjacency, 1)
    adjacency = adjacency | adjacency.T
    res = enrichment(adjacency, labels, n_perm=200)
    assert res["ratio"] > 3 and res["p_value"] < 0.01
    null = enrichment(adjacency, rng.permutation(labels), n_perm=200)
    assert null["p_value"] > 0.01


def _degree_corrected_graph(rng, labels, p_in, p_out):
    """Assortative DC-SBM graph with Pareto degree propensities (hubs in every block)."""
    theta = rng.pareto(2.5, len(labels)) + 1
    theta /= theta.mean()
    p = np.where(labels[:, None] == labels[None, :], p_in, p_out) * np.outer(theta, theta)
    a = np.triu(rng.random(p.shape) < np.clip(p, 0, 1), 1)
    return (a | a.T) * rng.uniform(1, 2, p.shape)  # weights carry no block information


def test_degree_corrected_sbm_finds_blocks_and_no_blocks_in_a_random_graph():
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1, 2], 40)
    w = _degree_corrected_graph(rng, labels, 0.3, 0.03)
    fit, dl = fit_dcsbm(w, max_blocks=5, restarts=2)
    assert nmi(labels, fit.labels) > 0.9 and fit.labels.max() + 1 == 3
    assert max(dl, key=dl.get) == 3
    flat = _degree_corrected_graph(rng, labels, 0.1, 0.1)
    assert fit_dcsbm(flat, max_blocks=5, restarts=2)[0].labels.max() == 0


def test_only_strongly_assortative_blocks_count_as_communities():
    """Two planted groups are communities; a large background block whose within mean exceeds
    its own between means by 10% is not, although its many pairs make that difference
    significant; missing pairs are ignored."""
    rng = np.random.default_rng(7)
    labels = np.repeat([0, 1, 2, 3], [10, 10, 150, 100])
    mean = np.full((270, 270), 0.10)
    same = labels[:, None] == labels[None, :]
    mean[same & (labels[:, None] < 2)] = 0.5
    mean[same & (labels[:, None] == 2)] = 0.11
    mean[(labels[:, None] == 0) & (labels[None, :] == 1)] = 0.2
    mean = np.maximum(mean, mean.T)
    w = mean + 0.02 * rng.standard_normal(mean.shape)
    w = (w + w.T) / 2
    w[0, 15] = w[15, 0] = np.nan
    found = assortative_labels(labels, w)
    assert set(np.unique(found)) == {-1, 0, 1}
    assert (found[labels >= 2] == -1).all() and (found[labels < 2] == labels[labels < 2]).all()


def test_epochs_driving_the_same_groups_are_one_condition():
    active = np.array([[0, 0, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1]], dtype=bool)
    conditions = planted_conditions(active)
    assert [c.tolist() for c in conditions] == [[1, 2], [3], [4]]


def test_component_graph_is_the_modelled_affinity_in_the_worms_that_recorded_each_pair():
    """A pair seen only in a worm that barely expresses the component is weak in its graph, however
    large its loading; a pair seen in no worm has no weight."""
    loading = np.array([1.0, 1.0, 4.0, 1.0, 1.0, 1.0])  # pairs of 4 neurons: 01 02 03 12 13 23
    worm_factor = np.array([1.0, 0.1])
    seen = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [1, 1], [0, 0]], dtype=bool)
    worm, pair = np.nonzero(seen.T)  # the (pair, worm) entries recorded together
    g = component_graph(loading, worm_factor, pair, worm, pair_index(4), 4)
    assert g[0, 1] == pytest.approx(np.sqrt(0.55)) and g[1, 0] == g[0, 1]
    assert g[0, 2] == pytest.approx(1.0)
    assert g[0, 3] == pytest.approx(np.sqrt(0.4))  # loading 4, but seen only where c = 0.1
    assert np.isnan(g[2, 3])


def test_validation_scores_only_names_whose_rois_are_correctly_identified():
    """Neuron 'n3' is a group member's trace filed under a non-member's name in one worm: the
    community that contains it is right about the data; it is left out of the main score and
    counted in the all-labels score."""
    names = [f"n{i}" for i in range(12)]
    group = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    found = np.where(group, 0, 1)
    found[3] = 0  # the misidentified name sits with the group it carries
    i, j = pair_index(12)
    strength = np.where(found[i] == found[j], np.where(found[i] == 0, 1.0, 0.1), 0.05)
    windows = 4
    result = xr.Dataset(
        {
            "affinity": (("entry", "window"), np.ones((2 * len(i), windows))),
            "entry_pair": ("entry", np.tile(np.arange(len(i)), 2)),
            "entry_worm": ("entry", np.repeat([0, 1], len(i))),
            "pair_factor": (("component", "pair"), strength[None]),
            "worm_factor": (("component", "worm"), np.ones((1, 2))),
            "time_factor": (("component", "window"), np.array([[0.0, 1.0, 1.0, 0.0]])),
            "community": (("component", "neuron"), found[None]),
            "louvain_community": (("component", "neuron"), found[None]),
        },
        coords={
            "neuron": names,
            "neuron_a": ("pair", np.array(names)[i]),
            "neuron_b": ("pair", np.array(names)[j]),
            "window_time": ("window", np.arange(windows) * 10.0 + 5),
        },
    )
    result["affinity"].attrs["window_s"] = 10.0
    truth = xr.Dataset(
        {
            "group_member": (("group", "neuron"), group[None]),
            "group_active": (("epoch", "group"), np.array([[False], [True], [False]])),
            "epoch_start": ("epoch", [0.0, 10.0, 30.0]),
            "epoch_stop": ("epoch", [10.0, 30.0, 40.0]),
            "roi_label": (("worm", "roi"), np.array([["n0", "n3"], ["n3", "n5"]])),
            "label_status": (
                ("worm", "roi"),
                np.array([["correct", "wrong"], ["correct", "correct"]]),
            ),
        },
        coords={"neuron": names, "epoch": ["rest", "stim", "rest2"]},
    )
    v = validate_against_truth(result, truth)
    assert v["validation_time_correlation"].values[0] > 0.99
    assert v["validation_nmi_sbm"].values[0] == pytest.approx(1.0)
    assert v["validation_nmi_sbm_all_labels"].values[0] < 0.9
    assert int(v["validation_misidentified_names"]) == 1
    # the headline scalars reach the summary table beside the per-condition vectors
    assert v["validation_nmi"].ndim == 0 and v["validation_nmi_louvain_mean"].ndim == 0
    assert v["validation_nmi_louvain"].dims == ("condition",)
