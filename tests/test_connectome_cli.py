"""`neurodag connectome` end to end on a tiny contract-shaped homogenized file."""

import json

import numpy as np
import xarray as xr
from conftest import run_cli

from neurodag.io.netcdf import open_dataset, write_dataset


def tiny_worms(path, rng):
    """3 worms, 12 neurons; neurons 0-3 share a drive in the second half; neuron 11 absent in
    worm 0."""
    worms, t, n = 3, 240, 12
    time = np.arange(t) * 0.5
    activity = rng.standard_normal((worms, t, n))
    shared = rng.standard_normal((worms, t))
    activity[:, t // 2 :, :4] += 3 * shared[:, t // 2 :, None]
    activity[0, :, 11] = np.nan
    ds = xr.Dataset(
        {
            "activity": (("worm", "time", "neuron"), activity.astype(np.float32)),
            "valid_length": ("worm", np.full(worms, t)),
        },
        coords={
            "worm": [f"w{k}" for k in range(worms)],
            "time": time,
            "neuron": [f"N{k:02d}" for k in range(n)],
        },
    )
    return write_dataset(ds, path, stage="homogenize", parameters={}, inputs=[])


def test_cli_writes_factors_and_communities(tmp_path):
    source = tiny_worms(tmp_path / "worms.nc", np.random.default_rng(0))
    params = {"window_s": 20, "step_s": 10, "ranks": [1, 2], "restarts": 2, "max_blocks": 3}
    out = tmp_path / "connectome.nc"
    result = run_cli(
        "connectome", "--input", str(source), "--params", json.dumps(params),
        "--threads", "1", "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ds = open_dataset(out)
    assert {"affinity", "pair_factor", "time_factor", "worm_factor", "community"} <= set(ds)
    # only pairs recorded together are held: those with the absent neuron in worms 1 and 2 only
    absent = np.flatnonzero((ds["neuron_b"] == "N11").values)
    entry_pair, entry_worm = ds["entry_pair"].values, ds["entry_worm"].values
    with_absent = np.isin(entry_pair, absent)
    assert set(entry_worm[with_absent]) == {1, 2} and with_absent.sum() == 2 * absent.size
    assert ds.sizes["entry"] == 3 * 66 - 11 and ds.sizes["pair"] == 66
    assert np.isfinite(ds["affinity"].values).all()
    assert (tmp_path / "connectome.time_factors.png").exists()


def test_cli_with_anatomy_scores_enrichment(tmp_path):
    """With --anatomy, each component's communities are scored against the wiring."""
    source = tiny_worms(tmp_path / "worms.nc", np.random.default_rng(0))
    names = [f"N{k:02d}" for k in range(12)]
    weight = np.zeros((1, 2, 12, 12))
    weight[0, 0, :4, :4] = 1.0  # chemical synapses among the co-driven neurons only
    anatomy = xr.Dataset(
        {"weight": (("source", "synapse", "pre", "post"), weight)},
        coords={"source": ["consensus"], "synapse": ["chemical", "electrical"],
                "pre": names, "post": names},
    )  # fmt: skip
    anatomy_path = write_dataset(anatomy, tmp_path / "anatomy.nc", stage="homogenize")
    params = {"window_s": 20, "step_s": 10, "ranks": [1, 2], "restarts": 2, "max_blocks": 3,
              "n_perm": 20}  # fmt: skip
    out = tmp_path / "connectome.nc"
    result = run_cli(
        "connectome", "--input", str(source), "--anatomy", str(anatomy_path),
        "--params", json.dumps(params), "--threads", "1", "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ds = open_dataset(out)
    assert ds["enrichment_ratio"].dims == ("component",)
    assert ds["enrichment_p_value"].sizes["component"] == ds.sizes["component"]


def test_cli_rejects_a_file_without_activity(tmp_path):
    bad = write_dataset(
        xr.Dataset({"x": ("a", np.zeros(3))}), tmp_path / "bad.nc", stage="t", parameters={},
        inputs=[],
    )  # fmt: skip
    out = tmp_path / "out.nc"
    result = run_cli("connectome", "--input", str(bad), "--threads", "1", "-o", str(out))
    assert result.returncode == 2
    assert "activity" in result.stderr and "bad.nc" in result.stderr
    assert not out.exists()


def test_connectome_honours_the_compute_section(tmp_path):
    """The stage computes on the cluster compute.dask names: an address nobody listens on stops
    it with the key named (and no traceback)."""
    import os
    import subprocess
    import sys

    source = tiny_worms(tmp_path / "worms.nc", np.random.default_rng(0))
    compute = json.dumps({"dask": {"cluster": "address", "address": "tcp://127.0.0.1:9"}})
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    result = subprocess.run(
        [sys.executable, "-m", "neurodag", "connectome", "--input", str(source),
         "--compute", compute, "-o", str(tmp_path / "out.nc")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "compute.dask.address" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.nc").exists()
