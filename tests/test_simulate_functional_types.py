"""The functional-types planted piece: contract shape, determinism, and that the types differ."""

from __future__ import annotations

import numpy as np
import pytest

from neurodag.simulate.functional_types import (
    TYPES,
    functional_types,
    sample_responses,
    spatial_filter,
)


@pytest.fixture(scope="module")
def piece():
    return functional_types(neurons_per_type=4, n_images=60, repeats=2, seed=3)


def test_piece_follows_the_planted_piece_contract(piece):
    assert piece.attrs["stimulus_name"] == "natural_scenes"
    assert piece["rate"].dims == ("trial", "neuron", "time")
    assert piece["image"].dims == ("frame", "y", "x")
    assert piece.sizes["trial"] == 2 * piece.sizes["frame"]
    assert set(np.unique(piece["frame"].values)) == set(range(piece.sizes["frame"]))
    assert len(set(piece["neuron"].values)) == piece.sizes["neuron"]
    assert all(n.startswith("ftype_") for n in piece["neuron"].values)
    assert set(piece["region"].values) == {"VISpm"}
    assert set(piece["true_type"].values) == set(TYPES)
    assert float(piece["image"].min()) >= 0 and float(piece["image"].max()) <= 255
    assert np.all(np.isfinite(piece["rate"].values)) and float(piece["rate"].min()) > 0


def test_seeded(piece):
    again = functional_types(neurons_per_type=4, n_images=60, repeats=2, seed=3)
    np.testing.assert_array_equal(piece["rate"].values, again["rate"].values)
    other = functional_types(neurons_per_type=4, n_images=60, repeats=2, seed=4)
    assert not np.array_equal(piece["rate"].values, other["rate"].values)


def test_grey_screen_gives_the_base_rate():
    grey = np.full((3, 32, 32), 127.5)
    p = functional_types(neurons_per_type=2, images=grey, repeats=1, seed=0)
    np.testing.assert_allclose(p["rate"].values, p.attrs["base_rate_hz"], rtol=1e-5)


def test_each_neuron_prefers_its_own_type_filter():
    """Shown every type's filter at its RF centre, a neuron fires most for its own type's."""
    grey = np.full((1, 32, 32), 127.5)
    layout = functional_types(neurons_per_type=3, images=grey, repeats=1, seed=5)
    rf_size, half = 15, 7
    names = list(TYPES)
    images = []
    for cy, cx in layout["true_rf_center"].values:
        for name in names:
            kind, orientation, _ = TYPES[name]
            patch = spatial_filter(kind, orientation, rf_size, 2.5)
            image = np.full((32, 32), 127.5)
            image[cy - half : cy + half + 1, cx - half : cx + half + 1] += (
                127.5 * patch / np.abs(patch).max()
            )
            images.append(image)
    # Same seed and neuron count: same RF layout as above.
    driven = functional_types(neurons_per_type=3, images=np.array(images), repeats=1, seed=5)
    np.testing.assert_array_equal(driven["true_rf_center"], layout["true_rf_center"])
    mean = np.empty((len(images), driven.sizes["neuron"]))
    mean[driven["frame"].values] = driven["rate"].mean("time").values
    for i, own in enumerate(driven["true_type"].values):
        own_block = mean[i * len(names) : (i + 1) * len(names), i]
        assert names[int(np.argmax(own_block))] == own


def test_temporal_kinds_differ(piece):
    psth = piece["rate"].mean("trial")
    late_over_peak = (psth.isel(time=-1) - piece.attrs["base_rate_hz"]) / (
        psth.max("time") - piece.attrs["base_rate_hz"]
    )
    kinds = np.array([TYPES[t][2] for t in piece["true_type"].values])
    assert late_over_peak.values[kinds == "sustained"].min() > 0.8
    assert late_over_peak.values[kinds == "transient"].max() < 0.6


def test_sample_responses_is_ingest_shaped(piece):
    responses = sample_responses(piece, seed=1)
    assert responses["responses"].dtype.kind == "i"
    assert responses["responses"].dims == ("trial", "neuron", "time")
    assert "image" in responses and "frame" in responses and "region" in responses.coords
    rate = piece["rate"].values.mean() * piece.attrs["dt_s"]
    assert abs(responses["responses"].values.mean() - rate) < 0.1 * rate
