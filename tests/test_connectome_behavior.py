"""Component time courses against behaviour: window means, circular-shift null, BH."""

import numpy as np
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodag.connectome.behavior import (
    _shifted_window_means,
    behaviour_correlations,
    benjamini_hochberg,
    component_time_courses,
)
from neurodag.connectome.ntf import ObservedTensor


def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan])
    # sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.0533, 0.0533, 0.5 (monotone from the top)
    np.testing.assert_allclose(benjamini_hochberg(p)[:4], [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert np.isnan(benjamini_hochberg(p)[4])


@settings(max_examples=40, deadline=None)
@given(st.integers(12, 60), st.integers(2, 8), st.integers(0, 3), st.data())
def test_shifted_window_means_are_the_means_of_the_rolled_series(n, length, holes, data):
    rng = np.random.default_rng(n * 7 + length)
    b = rng.normal(size=n)
    b[rng.choice(n, holes, replace=False)] = np.nan
    starts = np.arange(0, n + 3, 3)  # some windows run past the series
    shifts = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5)))
    got = _shifted_window_means(b, starts, length, shifts, 0.5)
    for row, k in zip(got, shifts, strict=True):
        rolled = np.roll(b, -k)
        for j, s in enumerate(starts):
            window = rolled[s : s + length]
            if s + length > n or np.isfinite(window).sum() < 0.5 * length:
                assert np.isnan(row[j])
            else:
                np.testing.assert_allclose(row[j], np.nanmean(window))


def test_component_time_courses_are_loading_weighted_pair_means():
    rng = np.random.default_rng(0)
    affinity = rng.uniform(size=(3, 5, 7))  # (worm, window, pair)
    affinity[1, :, 2] = np.nan  # a pair worm 1 never recorded
    affinity[2, 3, 4] = np.nan  # a masked window of a recorded pair
    g = rng.uniform(size=(7, 2))
    g[5] = np.nan  # a NaN loading weighs 0
    observed = ObservedTensor.from_dense(affinity.transpose(2, 1, 0))
    assert observed.pair.size == 3 * 7 - 1  # the unrecorded pair is no entry
    out = component_time_courses(observed, g)
    g[5] = 0.0
    assert out.shape == (2, 3, 5)
    for c in range(2):
        for w in range(3):
            a = affinity[w]
            ok = np.isfinite(a)
            expected = (np.where(ok, a, 0) @ g[:, c]) / (ok @ g[:, c])
            np.testing.assert_allclose(out[c, w], expected)


def _behaviour(rng, worms, n):
    """Reversal-like 0/1 series (runs of a few steps) and a slow velocity."""
    rev = np.zeros((worms, n))
    for w in range(worms):
        for start in rng.choice(n - 20, 12, replace=False):
            rev[w, start : start + rng.integers(5, 15)] = 1
    vel = np.cumsum(rng.normal(size=(worms, n)), axis=1) * 0.01
    values = np.stack([rev, vel], axis=2)
    return xr.DataArray(
        values,
        dims=("worm", "time", "variable"),
        coords={"worm": [f"w{k}" for k in range(worms)], "variable": ["reversal", "velocity"]},
    )


def test_the_course_that_tracks_reversals_is_found_and_an_unrelated_one_is_not():
    rng = np.random.default_rng(3)
    worms, n, length, step = 4, 900, 15, 5
    behaviour = _behaviour(rng, worms, n)
    starts = np.arange(0, n - length + 1, step)
    rev_means = np.stack(
        [
            _shifted_window_means(behaviour.values[w, :, 0], starts, length, np.array([0]), 0.8)[0]
            for w in range(worms)
        ]
    )
    tracking = rev_means + rng.normal(0, 0.1, rev_means.shape)
    unrelated = np.cumsum(rng.normal(size=(worms, starts.size)), axis=1)
    courses = np.stack([tracking, unrelated])  # (component, worm, window)
    ds = behaviour_correlations(courses, starts, length, behaviour, n_null=500, seed=1)
    assert ds["behavior_corr"].sel(component=0, variable="reversal").min() > 0.8
    assert (ds["behavior_q"].sel(component=0, variable="reversal") < 0.01).all()
    assert float(ds["behavior_q_mean"].sel(component=0, variable="reversal")) < 0.01
    assert float(ds["behavior_p_mean"].sel(component=1, variable="reversal")) > 0.05
    assert (ds["behavior_n_shifts"] == n - 2 * length + 1).all()
    # valid_length: steps past a worm's end take no part
    short = behaviour_correlations(
        courses, starts, length, behaviour, valid_length=np.array([n, n, 300, n]), n_null=50
    )
    assert np.isnan(short["behavior_window_mean"].values[2, starts + length > 300]).all()
    assert np.isfinite(short["behavior_corr"].values[0, 2, 0])


def test_shared_time_factors_equal_the_same_course_in_every_worm():
    rng = np.random.default_rng(5)
    behaviour = _behaviour(rng, 3, 400)
    starts = np.arange(0, 386, 5)
    shared = rng.normal(size=(2, starts.size))
    a = behaviour_correlations(shared, starts, 15, behaviour, n_null=100, seed=2)
    b = behaviour_correlations(
        np.repeat(shared[:, None], 3, axis=1), starts, 15, behaviour, n_null=100, seed=2
    )
    xr.testing.assert_allclose(a, b)


def test_against_a_connectome_result_uses_its_windows_and_each_worms_pairs(tmp_path):
    from neurodag.connectome.affinity import WindowGrid
    from neurodag.connectome.behavior import (
        behaviour_against_components,
        plot_components_over_behaviour,
    )

    rng = np.random.default_rng(2)
    worms, n, dt = 2, 600, 1 / 3
    behaviour = _behaviour(rng, worms, n)
    params = {"window_s": 5.0, "step_s": 2.0, "min_valid_fraction": 0.8}
    grid = WindowGrid.from_seconds(n, dt, params["window_s"], params["step_s"])
    rev = np.stack(
        [
            _shifted_window_means(behaviour.values[w, :, 0], grid.starts, grid.length,
                                  np.array([0]), 0.8)[0]
            for w in range(worms)
        ]
    )  # fmt: skip
    affinity = rng.uniform(0, 0.2, size=(3, grid.starts.size, worms))  # (pair, window, worm)
    affinity[0] += 0.8 * rev.T  # pair 0 follows each worm's reversals
    observed = ObservedTensor.from_dense(affinity)
    result = xr.Dataset(
        {
            "affinity": (("entry", "window"), observed.values),
            "entry_pair": ("entry", observed.pair),
            "entry_worm": ("entry", observed.worm),
            "pair_factor": (("component", "pair"), np.array([[1.0, 0, 0], [0, 0.5, 0.5]])),
            "time_factor": (("component", "window"), rng.uniform(size=(2, grid.starts.size))),
        },
        coords={"worm": behaviour.worm.values},
    )
    homogenized = xr.Dataset(
        {"behavior": behaviour, "valid_length": ("worm", [n, n])},
        coords={"time": np.arange(n) * dt},
    )
    ds = behaviour_against_components(result, homogenized, params, n_null=200)
    assert (ds["behavior_corr"].sel(component=0, variable="reversal") > 0.9).all()
    assert float(ds["behavior_p_mean"].sel(component=0, variable="reversal")) == 1 / 201
    assert float(ds["behavior_q_mean"].sel(component=0, variable="reversal")) < 0.05
    assert float(ds["behavior_p_mean"].sel(component=1, variable="reversal")) > 0.01
    shared = behaviour_against_components(result, homogenized, params, per_worm=False, n_null=50)
    assert "behavior_course" not in shared
    png = plot_components_over_behaviour(ds, grid.centres_s, tmp_path / "c.png")
    assert png.stat().st_size > 5000


def test_the_behaviour_validation_finds_the_driving_groups_component():
    """The component tracking a behaviour best must be one matched to a condition that activates
    the behaviour's planted driving group."""
    import xarray as xr

    from neurodag.connectome.stage import behaviour_validation

    truth = xr.Dataset(
        {
            "group_active": (("epoch", "group"), np.array([[0, 0], [1, 0], [0, 1]], dtype=bool)),
            "behavior_group": ("variable", [0, 1]),
        },
        coords={"variable": ["reversal", "velocity"]},
    )
    validation = xr.Dataset({"validation_matched_component": ("condition", [1, 0])})
    result = xr.Dataset(
        {
            # reversal tracked best by component 1 (carries group 0); velocity by component 1 too
            "behavior_corr_mean": (("component", "variable"), [[0.1, 0.2], [0.6, -0.5]]),
            "behavior_q_mean": (("component", "variable"), [[0.5, 0.4], [0.01, 0.02]]),
        },
        coords={"variable": ["reversal", "velocity"]},
    )
    out = behaviour_validation(result, truth, validation)
    assert out["validation_behavior_component_found"].values.tolist() == [1.0, 0.0]
    assert out["validation_behavior_q"].values.tolist() == [0.01, 0.02]
