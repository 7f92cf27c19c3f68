"""The workflow on simulated worms: simulate -> ingest -> homogenize, and the truth it recovers."""

import subprocess

import numpy as np
import pytest
from test_workflow import workdir  # noqa: F401  (fixture: a scratch copy of the workflow)

from neurodag.io.netcdf import open_dataset, provenance


@pytest.mark.slow
def test_simulated_worms_run_through_ingest_and_homogenize(workdir):  # noqa: F811
    small = workdir / "small.yaml"
    small.write_text(
        "datasets:\n"
        "  connectome: {kind: connectome, format: wormneuroatlas, enabled: false}\n"
        "  worms: {kind: celegans, format: simulated, simulate: {n_worms: 3, duration_s: 120}}\n"
        "  allen: {kind: allen, format: simulated, enabled: false}\n"
    )
    result = subprocess.run(
        ["snakemake", "results/homogenize/worms.nc", "--cores", "2", "--configfile", str(small)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    ds = open_dataset(workdir / "results" / "homogenize" / "worms.nc")
    truth = open_dataset(workdir / "results" / "simulate" / "worms" / "truth.nc")
    assert list(ds.worm.values) == list(truth.worm.values)
    assert provenance(ds)["stage"] == "homogenize"
    np.testing.assert_allclose(np.diff(ds.time.values), 1 / 3, atol=1e-9)
    # every canonical slot holds the trace of the neuron its label names, labelled correctly
    for w, worm in enumerate(truth.worm.values):
        status = truth["label_status"].values[w]
        correct = set(truth["roi_neuron"].values[w][status == "correct"])
        wrong = set(truth["roi_label"].values[w][status == "wrong"])
        slotted = set(ds.neuron.values[ds["labeled"].sel(worm=worm).values])
        assert slotted == correct | wrong
        # labelled traces follow the true rate of their neuron (GCaMP lags and smooths it),
        # and not the rate of another neuron
        names = sorted(correct)
        own, other = [], []
        for i, name in enumerate(names):
            trace = ds["activity"].sel(worm=worm, neuron=name).values
            valid = np.isfinite(trace)
            rates = truth["true_rate"].sel(worm=worm).values[: trace.size][valid]
            own.append(np.corrcoef(trace[valid], rates[:, truth.neuron.values == name][:, 0])[0, 1])
            other_name = names[(i + 1) % len(names)]
            other.append(
                np.corrcoef(trace[valid], rates[:, truth.neuron.values == other_name][:, 0])[0, 1]
            )
        assert np.median(own) > 0.3 and np.median(own) > np.median(other) + 0.25, (own, other)
    assert (workdir / "results" / "logs" / "ingest" / "worms" / "worm000.log").exists()
    assert (workdir / "results" / "benchmarks" / "homogenize" / "worms.tsv").exists()
