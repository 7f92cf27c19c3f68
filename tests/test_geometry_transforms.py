"""Geo-topological transforms: the paper's per-RDM ranking, and how rsatoolbox's version differs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neurodag.geometry.rdm import square, upper
from neurodag.geometry.transforms import (
    geodesic_transform,
    gt_transform,
    rank_scale,
    sigmoid_transform,
    transform,
)

# integer-valued floats: monotonic maps in the tests keep ties and order exactly
vectors = arrays(float, st.sampled_from([6, 10, 15, 21]), elements=st.integers(0, 1000))
bounds = st.tuples(st.floats(0, 1), st.floats(0, 1)).map(sorted)


@settings(max_examples=60, deadline=None)
@given(vector=vectors, lu=bounds)
def test_gt_is_in_unit_interval_and_monotonic(vector, lu):
    low, up = lu
    out = gt_transform(vector, low, up)
    assert out.shape == vector.shape
    assert np.all((out >= 0) & (out <= 1))
    order = np.argsort(vector, kind="stable")
    assert np.all(np.diff(out[order]) >= -1e-12)  # order-preserving (ties allowed)


@settings(max_examples=40, deadline=None)
@given(vector=vectors, scale=st.floats(0.01, 100), lu=bounds)
def test_gt_depends_on_ranks_only(vector, scale, lu):
    """Per-RDM ranking makes GT invariant to any monotonic rescaling of one RDM."""
    low, up = lu
    np.testing.assert_allclose(
        gt_transform(vector, low, up), gt_transform(scale * vector**2 + 3, low, up)
    )


def test_gt_thresholds_are_quantiles_of_each_rdm():
    vector = np.arange(1.0, 102.0)  # ranks 0..100 -> scaled 0, 0.01, ..., 1
    out = gt_transform(vector, 0.2, 0.6)
    assert np.all(out[:21] == 0)
    assert np.all(out[60:] == 1)
    np.testing.assert_allclose(out[40], 0.5)
    np.testing.assert_allclose(transform(vector, "raw", 0, 1), rank_scale(vector))
    np.testing.assert_allclose(gt_transform(vector, 0, 1), rank_scale(vector))


def test_sigmoid_passes_the_bounds():
    vector = np.arange(1.0, 1002.0)
    out = sigmoid_transform(vector, 0.2, 0.6)
    assert out.min() > 0 and out.max() < 1
    np.testing.assert_allclose([out[200], out[600]], [0.01, 0.99], atol=1e-9)
    np.testing.assert_allclose(out[400], 0.5, atol=0.01)


def test_geodesic_recovers_a_ring():
    """Points on a circle: after removing the long (saturated) edges, graph distances follow the
    arc length, which neither the chord distances' GT nor the GT alone does as well."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
    points = np.c_[np.cos(angles), np.sin(angles)]
    chord = upper(np.linalg.norm(points[:, None] - points[None], axis=-1))
    arc = np.abs(angles[:, None] - angles[None])
    arc = upper(np.minimum(arc, 2 * np.pi - arc))
    geodesic = geodesic_transform(chord, 0.05, 0.2)
    assert spearmanr(geodesic, arc)[0] > 0.9
    assert spearmanr(geodesic, arc)[0] > spearmanr(gt_transform(chord, 0.05, 0.2), arc)[0] + 0.1
    assert np.all((geodesic >= 0) & (geodesic <= 1))


def test_geodesic_of_disconnected_clusters_is_maximal_between_them():
    points = np.r_[np.zeros((5, 2)), np.full((5, 2), 10.0)] + np.random.default_rng(1).normal(
        0, 0.1, (10, 2)
    )
    rdm = upper(np.linalg.norm(points[:, None] - points[None], axis=-1))
    out = square(geodesic_transform(rdm, 0.0, 0.4))
    between = out[:5, 5:]
    assert np.all(between == out.max())
    assert out[:5, :5].max() < between.min()


def test_rsatoolbox_geotopological_transform_differs():
    """rsatoolbox takes raw values and quantiles jointly over all RDMs; the paper ranks per RDM."""
    pytest.importorskip("rsatoolbox")
    from rsatoolbox.rdm import RDMs
    from rsatoolbox.rdm.transform import geotopological_transform

    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 45)
    rdms = np.stack([base, 10 * base])  # same ranks, different scale
    ours = gt_transform(rdms, 0.2, 0.6)
    theirs = geotopological_transform(RDMs(rdms.copy()), 0.2, 0.6).get_vectors()
    # Ours: identical for both (ranks are the same) ...
    np.testing.assert_allclose(ours[0], ours[1])
    # ... rsatoolbox: thresholds pooled over both RDMs, so the small-scale RDM is mostly 0
    # and the large-scale one mostly 1.
    assert theirs[0].mean() < 0.2 and theirs[1].mean() > 0.8
    # One RDM with values above 1: both saturate the same pairs, but between l and u ours is
    # linear in rank, rsatoolbox's linear in the raw value.
    shifted = 5 + 10 * base
    single_ours = gt_transform(shifted, 0.2, 0.6)
    single_theirs = geotopological_transform(RDMs(shifted[None].copy()), 0.2, 0.6).get_vectors()[0]
    assert np.array_equal(single_ours == 0, single_theirs == 0)
    assert np.array_equal(single_ours == 1, single_theirs == 1)
    assert not np.allclose(single_ours, single_theirs)
    # rsatoolbox rescales in place before saturating, so for dissimilarities in [0, 1] the ramp's
    # rescaled values above the raw u-quantile are set to 1 as well: more pairs saturate.
    in_unit = geotopological_transform(RDMs(base[None].copy()), 0.2, 0.6).get_vectors()[0]
    assert np.sum(in_unit == 1) > np.sum(gt_transform(base, 0.2, 0.6) == 1)


def test_bounds_are_checked():
    with pytest.raises(ValueError, match="l <= u"):
        gt_transform(np.arange(6.0), 0.7, 0.2)
    with pytest.raises(ValueError, match="unknown transform"):
        transform(np.arange(6.0), "cubic", 0, 1)


def test_geodesic_follows_the_papers_graph():
    """Pairs below l (GT = 0) are not direct edges and saturated pairs are removed, as in the
    paper's networkx graph: with three stimuli at GT values 0, 0.5, 1 only one edge is left."""
    out = geodesic_transform(np.array([1.0, 2.0, 3.0]), 0.0, 1.0)
    np.testing.assert_allclose(out, [1.0, 0.0, 1.0])
