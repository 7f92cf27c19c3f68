"""Homogenization of C. elegans activity: the transforms against direct numpy statements of the
formulas (property-based), the worm pipeline, and the min-length drop."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neurodag.config import stage_defaults
from neurodag.homogenize.calcium import (
    homogenize_celegans,
    normalise,
    resample,
    smooth,
    target_grid,
)
from neurodag.io.celegans import recording_dataset
from neurodag.io.celegans_nwb import CalciumRecording
from neurodag.io.netcdf import write_dataset

PARAMS = stage_defaults("homogenize")["celegans"]
finite = st.floats(-1e3, 1e3, allow_nan=False)
traces = arrays(np.float64, st.tuples(st.integers(2, 40), st.integers(1, 3)), elements=finite)
frame_s = st.floats(0.05, 2.0)


@settings(max_examples=50, deadline=None)
@given(traces, frame_s, st.floats(0.05, 5.0))
def test_moving_average_is_the_mean_of_the_last_w_frames(x, frame, window):
    y = smooth(x, "moving_average", frame, {**PARAMS, "smooth_window_s": window})
    w = max(1, int(round(window / frame)))
    direct = np.array([x[max(0, t - w + 1) : t + 1].mean(axis=0) for t in range(len(x))])
    np.testing.assert_allclose(y, direct, rtol=1e-9, atol=1e-7)


@settings(max_examples=50, deadline=None)
@given(traces, frame_s, st.floats(0.05, 5.0), st.floats(0.05, 3.0))
def test_gaussian_is_a_normalised_half_gaussian_over_the_past(x, frame, window, sigma):
    p = {**PARAMS, "smooth_window_s": window, "gaussian_sigma_s": sigma}
    y = smooth(x, "gaussian", frame, p)
    w = max(1, int(round(window / frame)))
    direct = []
    for t in range(len(x)):
        lags = np.arange(min(w, t + 1))
        k = np.exp(-((lags * frame) ** 2) / (2 * sigma**2))
        direct.append((k[:, None] * x[t - lags]).sum(axis=0) / k.sum())
    np.testing.assert_allclose(y, np.array(direct), rtol=1e-7, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(traces, frame_s, st.floats(0.05, 5.0))
def test_exponential_is_the_recursive_filter(x, frame, tau):
    y = smooth(x, "exponential", frame, {**PARAMS, "exponential_tau_s": tau})
    a = 1 - math.exp(-frame / tau)
    direct = [x[0]]
    for t in range(1, len(x)):
        direct.append(a * x[t] + (1 - a) * direct[-1])
    np.testing.assert_allclose(y, np.array(direct), rtol=1e-7, atol=1e-6)


def _times(draw_steps, start):
    return start + np.concatenate([[0.0], np.cumsum(draw_steps)])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(3, 60).flatmap(
        lambda n: st.tuples(
            arrays(np.float64, (n - 1,), elements=st.floats(0.05, 2.0)),
            arrays(np.float64, (n, 2), elements=finite),
        )
    ),
    st.floats(0.05, 2.0),
    st.floats(-1e4, 1e6),
)
def test_resampling_matches_the_direct_formula_and_the_grid_is_exact(data, dt, start):
    steps, x = data
    t = _times(steps, start)
    grid, y = resample(t, x, dt)
    rel = t - t[0]
    assert np.max(np.abs(np.diff(grid) - dt), initial=0.0) < 1e-9
    assert grid[0] == 0 and grid[-1] <= rel[-1] + 1e-9 and grid[-1] + dt > rel[-1] - 1e-9
    frame = np.median(np.diff(rel))
    for column in range(x.shape[1]):
        if frame >= dt:
            direct = np.interp(grid, rel, x[:, column])
        else:
            m = math.ceil(dt / frame)
            direct = np.array(
                [
                    np.mean(
                        [np.interp(g - dt + (i + 1) * dt / m, rel, x[:, column]) for i in range(m)]
                    )
                    for g in grid
                ]
            )
        np.testing.assert_allclose(y[:, column], direct, rtol=1e-9, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(traces)
def test_zscore_and_causal_normalisation(x):
    def clearly_varying(past):  # away from the round-off threshold of a zero deviation
        return past.std(axis=0) > 1e-4 * np.maximum(np.abs(past.mean(axis=0)), 1.0)

    z = normalise(x, "zscore")
    ok = clearly_varying(x)
    expected = (x - x.mean(axis=0)) / np.where(ok, x.std(axis=0), 1)
    np.testing.assert_allclose(z[:, ok], expected[:, ok], rtol=1e-7, atol=1e-6)
    assert np.all(z[:, np.ptp(x, axis=0) == 0] == 0)
    causal = normalise(x, "causal")
    for t in range(len(x)):
        past = x[: t + 1]
        ok = clearly_varying(past)
        expected = (x[t] - past.mean(axis=0)) / np.where(ok, past.std(axis=0), 1)
        np.testing.assert_allclose(causal[t][ok], expected[ok], rtol=1e-5, atol=1e-5)
        assert np.all(causal[t][np.ptp(past, axis=0) == 0] == 0)


def test_grid_counts_every_step_that_fits():
    assert target_grid(1.0, 1 / 3).size == 4  # 0, 1/3, 2/3, 1 (1.0 fits up to round-off)
    assert target_grid(0.99, 1 / 3).size == 3


def _ingest_file(tmp_path, name, duration, frame, labels, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(0, duration, frame) + 1000.0
    x = rng.normal(size=(t.size, len(labels))).cumsum(axis=0)
    rec = CalciumRecording(traces=x, timestamps=t, labels=labels, identifier=name)
    ds = recording_dataset(rec, name, tmp_path / f"{name}.nwb")
    return write_dataset(ds, tmp_path / f"{name}.nc", stage="ingest"), x


def test_pipeline_slots_labelled_keeps_unlabelled_and_drops_short_worms(tmp_path):
    long_file, x = _ingest_file(tmp_path, "a", 90.0, 0.6, ["AVAL", "", "AVAR?", "SMDVL"])
    short_file, _ = _ingest_file(tmp_path, "b", 30.0, 0.2, ["AVAL"], seed=1)
    ds = homogenize_celegans({"kind": "celegans"}, {"dt": 0.5}, [long_file, short_file], threads=1)
    assert list(ds.worm.values) == ["a"]
    assert "b" in json.loads(ds.attrs["dropped"])
    assert ds["labeled"].sel(worm="a").sum() == 2
    assert bool(ds["labeled"].sel(worm="a", neuron="AVAL"))
    assert not bool(ds["labeled"].sel(worm="a", neuron="AVAR"))  # uncertain: kept apart
    assert list(ds["roi_flag"].values[0]) == ["unlabeled", "uncertain"]
    np.testing.assert_allclose(np.diff(ds.time.values), 0.5, atol=1e-9)
    aval = ds["activity"].sel(worm="a", neuron="AVAL").values
    assert abs(aval.mean()) < 1e-6 and abs(aval.std() - 1) < 1e-5
    # the same numbers as the transforms applied by hand to the AVAL column
    t = np.arange(0, 90.0, 0.6)
    grid, expected = resample(t, smooth(x[:, :1], "moving_average", 0.6, PARAMS), 0.5)
    np.testing.assert_allclose(aval, normalise(expected, "zscore")[:, 0], atol=1e-5)


def test_every_worm_dropped_is_an_error(tmp_path):
    from neurodag.errors import ConfigError

    short_file, _ = _ingest_file(tmp_path, "b", 10.0, 0.5, ["AVAL"])
    with pytest.raises(ConfigError, match="min_duration_s"):
        homogenize_celegans({"kind": "celegans"}, {}, [short_file], threads=1)
