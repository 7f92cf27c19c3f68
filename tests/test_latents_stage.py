"""The latents stage end to end through the CLI, on a contract-shaped ingest file written from the
Lorenz generator (responses(trial, neuron, time) counts, stimulus variables on trial)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from conftest import run_cli

from neurodag.io.netcdf import open_dataset, provenance, write_dataset
from neurodag.simulate.lorenz import lorenz_trials, sample_counts


def ingest_file(path, **sizes):
    piece = lorenz_trials(seed=3, **sizes)
    counts = sample_counts(piece, seed=4)
    ds = xr.Dataset(
        {
            "responses": counts.transpose("trial", "neuron", "time"),
            "condition": piece["condition"],
            "start_time": ("trial", np.arange(piece.sizes["trial"]) * 2.0),
        }
    )
    ds = ds.assign_coords(probe=("neuron", ["probeA"] * piece.sizes["neuron"]))
    write_dataset(ds, path, stage="ingest")
    truth = piece[["true_rate", "true_latent"]]
    write_dataset(truth, path.with_name("truth.nc"), stage="simulate")
    return path


TINY = {"steps": 4, "batch_size": 8, "checkpoint_every": 2, "log_every": 2, "forward_bins": 3}


@pytest.mark.slow  # ~15 s alone (torch start-up twice), more on a loaded machine
def test_cli_writes_rates_latents_and_metrics(tmp_path):
    source = ingest_file(
        tmp_path / "lorenz_trials.nc",
        n_conditions=4,
        trials_per_condition=5,
        n_neurons=8,
        n_time=12,
    )
    out = tmp_path / "latents" / "allen.nc"
    result = run_cli(
        "latents",
        "--input",
        str(source),
        "--params",
        json.dumps(TINY),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--truth",
        str(tmp_path / "truth.nc"),
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "step 4/4" in result.stderr  # progress in the log
    ds = open_dataset(out)
    assert ds["rates"].dims == ("trial", "time", "neuron")
    assert ds["rates"].shape == (20, 12, 8) and (ds["rates"] > 0).all()
    assert ds["latent"].dims == ("trial", "time", "dim") and ds.sizes["dim"] == 16
    assert int(ds["heldout"].sum()) == 2 and int(ds["forward"].sum()) == 3
    assert int(ds["validation"].sum()) == 4
    for metric in ("co_bps", "fp_bps", "psth_r2", "validation_rate_r2"):
        assert np.isfinite(ds[metric].item()), metric
    ceiling = ds["validation_co_bps_true_rates"].item()
    assert ceiling > 0  # the planted rates beat the mean-rate null
    assert ds["validation_co_bps_fraction"].item() == pytest.approx(ds["co_bps"].item() / ceiling)
    assert list(ds["condition"].values) == list(np.repeat(np.arange(4), 5))
    assert set(ds["region"].values) == {"VISrl"}
    assert provenance(ds)["stage"] == "latents"
    assert provenance(ds)["parameters"]["steps"] == 4
    assert out.with_suffix(".rates.png").exists()
    check_psth_r2_as_nlb(ds, open_dataset(source))
    checkpoint = out.with_name("allen.checkpoint.pt")
    assert checkpoint.exists()
    # A rerun finds the finished checkpoint and does not train again.
    again = run_cli(
        "latents",
        "--input",
        str(source),
        "--params",
        json.dumps(TINY),
        "--device",
        "cpu",
        "--no-figures",
        "-o",
        str(out),
    )
    assert again.returncode == 0, again.stderr
    assert "resumed from" in again.stderr and "step 2/4" not in again.stderr


def check_psth_r2_as_nlb(out, source):
    """The stage's PSTH R2 is nlb_tools' ``eval_psth`` on NLB-formed conditions: the PSTH averages
    the smoothed spikes of all trials of a condition, the rates those of its validation trials."""
    try:
        from nlb_tools.evaluation import eval_psth
    except ImportError:  # installed with --no-deps beside the test extras (README)
        return
    from neurodag.latents.metrics import condition_psth
    from neurodag.latents.smoothing import smooth

    t_in = int((~out["forward"]).sum())
    counts = source["responses"].transpose("trial", "time", "neuron").values[:, :t_in]
    labels, psth = condition_psth(smooth(counts, 2.0), source["condition"].values)
    valid = out["validation"].values
    rates = out["rates"].values[valid, :t_in].astype(float) * out.attrs["bin_size_s"]
    cond = source["condition"].values[valid]
    want = eval_psth(psth, rates, [np.flatnonzero(cond == c) for c in labels])
    assert out["psth_r2"].item() == pytest.approx(want, rel=1e-5)  # rates stored as float32


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda ds: ds.rename({"responses": "spikes"}), "responses"),
        (lambda ds: ds.assign(responses=-ds["responses"]), "responses"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(tmp_path, change, field):
    source = ingest_file(
        tmp_path / "in.nc", n_conditions=2, trials_per_condition=4, n_neurons=4, n_time=8
    )
    bad = tmp_path / "bad.nc"
    write_dataset(change(open_dataset(source)), bad, stage="ingest")
    out = tmp_path / "out.nc"
    result = run_cli(
        "latents",
        "--input",
        str(bad),
        "--params",
        json.dumps(TINY),
        "--device",
        "cpu",
        "-o",
        str(out),
    )
    assert result.returncode == 2
    assert field in result.stderr and str(bad) in result.stderr
    assert not out.exists()


def test_bad_params_name_the_key(tmp_path):
    result = run_cli(
        "latents", "--input", "x.nc", "--params", '{"stepz": 3}', "-o", str(tmp_path / "o.nc")
    )
    assert result.returncode == 2
    assert "stages.latents" in result.stderr and "stepz" in result.stderr


@pytest.mark.slow  # torch start-up
def test_behaviour_beside_the_trials_is_decoded_as_nlb_velocity_r2(tmp_path):
    """A generic NWB session's trial files carry behavior(trial, time, variable): the stage scores
    NLB velocity decoding from its rates on the validation trials."""
    piece = lorenz_trials(seed=3, n_conditions=4, trials_per_condition=5, n_neurons=8, n_time=12)
    source = ingest_file(
        tmp_path / "reach.nc", n_conditions=4, trials_per_condition=5, n_neurons=8, n_time=12
    )
    ds = open_dataset(source).load()
    latent = piece["true_latent"].transpose("trial", "time", "dim").values[..., :2]
    ds["behavior"] = (("trial", "time", "variable"), latent)
    ds = ds.assign_coords(variable=["x", "y"])
    with_behaviour = tmp_path / "with_behaviour.nc"
    write_dataset(ds, with_behaviour, stage="ingest")
    out = tmp_path / "latents.nc"
    result = run_cli(
        "latents", "--input", str(with_behaviour), "--params", json.dumps(TINY),
        "--device", "cpu", "--threads", "1", "--no-figures", "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    value = open_dataset(out)["velocity_r2"]
    assert np.isfinite(value.item()) and value.item() <= 1
    assert "x, y" in value.attrs["description"]
