"""The planted-geometry piece: contract shape, determinism, and that the truth matches the rates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from neurodag.simulate.geometry import CODES, natural_scenes, sample_responses


@pytest.fixture(scope="module")
def piece():
    return natural_scenes(n_images=16, image_size=16, neurons_per_region=12, repeats=3, seed=3)


def test_piece_follows_the_planted_piece_contract(piece):
    assert piece.attrs["stimulus_name"] == "natural_scenes"
    assert piece["rate"].dims == ("trial", "neuron", "time")
    assert piece["image"].dims == ("frame", "y", "x")
    assert piece["image"].shape == (16, 16, 16)
    assert piece["image"].min() >= 0 and piece["image"].max() <= 255
    assert len(set(piece["neuron"].values)) == piece.sizes["neuron"]
    assert all(str(n).startswith("geometry_") for n in piece["neuron"].values)
    assert set(piece["region"].values) == set(CODES)
    assert piece["region"].dims == ("neuron",)
    # every frame shown `repeats` times
    assert np.bincount(piece["frame"].values).tolist() == [3] * 16
    assert piece["true_rdm"].dims == ("rdm_region", "frame", "frame2")
    assert (piece["rate"] >= 0).all()


def test_piece_is_seeded():
    a = natural_scenes(n_images=8, neurons_per_region=5, repeats=2, seed=1)
    b = natural_scenes(n_images=8, neurons_per_region=5, repeats=2, seed=1)
    c = natural_scenes(n_images=8, neurons_per_region=5, repeats=2, seed=2)
    assert a.identical(b)
    assert not np.array_equal(a["rate"].values, c["rate"].values)


def test_true_rdm_is_the_distance_between_mean_rate_patterns(piece):
    for region in piece["rdm_region"].values:
        rates = piece["rate"].where(piece["region"] == region, drop=True).mean("time")
        pattern = rates.groupby(piece["frame"]).mean("trial").values
        expected = ((pattern[:, None] - pattern[None]) ** 2).sum(-1) / pattern.shape[1]
        np.testing.assert_allclose(piece["true_rdm"].sel(rdm_region=region).values, expected)


def test_planted_codes_have_distinct_geometries(piece):
    upper = np.triu_indices(piece.sizes["frame"], 1)
    vectors = np.array([rdm[upper] for rdm in piece["true_rdm"].values])
    corr = np.corrcoef(vectors)
    assert np.abs(corr[np.triu_indices(len(corr), 1)]).max() < 0.6
    # the categorical region: within-family distances below between-family ones
    family = piece["true_family"].values
    rdm = piece["true_rdm"].sel(rdm_region="VISl").values
    same = family[:, None] == family[None]
    off = ~np.eye(len(family), dtype=bool)
    assert rdm[same & off].max() < rdm[~same].min()


def test_sample_responses_is_ingest_shaped(piece):
    responses = sample_responses(piece, seed=0)
    assert responses["responses"].dims == ("trial", "neuron", "time")
    assert responses["responses"].dtype.kind == "i"
    assert responses["region"].dims == ("neuron",)
    assert responses.attrs["bin_size_s"] == piece.attrs["dt_s"]
    expected = float(piece["rate"].mean()) * piece.attrs["dt_s"]
    assert abs(float(responses["responses"].mean()) - expected) < 0.1 * expected


def test_distortion_changes_geometry_but_keeps_topology():
    """Subject distortions reorder distances (geometry) but keep ring, chain and clusters."""
    kwargs = {"n_images": 32, "neurons_per_region": 40, "repeats": 1, "seed": 4, "image_seed": 0}
    plain = natural_scenes(**kwargs)
    assert plain.identical(natural_scenes(**kwargs, geometry_distortion=0.0))
    warped = natural_scenes(**kwargs, geometry_distortion=2.0)
    upper = np.triu_indices(plain.sizes["frame"], 1)
    for region in plain["rdm_region"].values:
        a = plain["true_rdm"].sel(rdm_region=region).values[upper]
        b = warped["true_rdm"].sel(rdm_region=region).values[upper]
        # the order of distances changes (a monotone change would leave ranks equal)
        assert spearmanr(a, b).statistic < 0.99
    # ring: every frame's nearest frame is one of its two orientation neighbours
    orientation = warped["true_orientation"].values
    rdm = warped["true_rdm"].sel(rdm_region="VISal").values + np.diag(np.full(32, np.inf))
    order = np.argsort(orientation)
    rank = np.empty(32, int)
    rank[order] = np.arange(32)
    steps = np.abs(rank[:, None] - rank[np.argmin(rdm, axis=1)][:, None])[:, 0]
    assert np.all((steps == 1) | (steps == 31))
    # line: distance between luminance levels grows with the number of levels between them
    levels = np.unique(warped["true_luminance"].values)
    first = [int(np.argmax(warped["true_luminance"].values == v)) for v in levels]
    line = warped["true_rdm"].sel(rdm_region="VISam").values[np.ix_(first, first)]
    for i in range(len(levels)):
        assert np.all(np.diff(line[i, i:]) > 0) and np.all(np.diff(line[i, : i + 1]) < 0)
    # clusters: within-family distances below between-family ones
    family = warped["true_family"].values
    rdm = warped["true_rdm"].sel(rdm_region="VISl").values
    same, off = family[:, None] == family[None], ~np.eye(32, dtype=bool)
    assert rdm[same & off].max() < rdm[~same].min()
