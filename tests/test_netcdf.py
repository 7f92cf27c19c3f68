"""The NetCDF writer: round trip, provenance, atomicity."""

import hashlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neurodag import __version__
from neurodag.io.netcdf import open_dataset, provenance, temporary_path, write_dataset


def small_dataset(values=None):
    values = np.arange(12.0).reshape(3, 4) if values is None else values
    return xr.Dataset(
        {"counts": (("neuron", "time"), values)},
        coords={"neuron": [f"u{i}" for i in range(values.shape[0])], "time": np.arange(4) * 0.5},
    )


@settings(max_examples=25, deadline=None)
@given(arrays(np.float64, (3, 4), elements=st.floats(allow_nan=True, width=64)))
def test_round_trip_is_exact(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("rt") / "x.nc"
    ds = small_dataset(values)
    write_dataset(ds, path, stage="test")
    back = open_dataset(path)
    xr.testing.assert_identical(back.drop_attrs(), ds)


def test_provenance(tmp_path):
    source = tmp_path / "input.csv"
    source.write_text("a,b\n1,2\n")
    path = write_dataset(
        small_dataset(),
        tmp_path / "sub" / "x.nc",
        stage="homogenize",
        parameters={"dt": 0.333, "smooth": "moving_average"},
        inputs=[source],
    )
    prov = provenance(open_dataset(path))
    assert prov["stage"] == "homogenize"
    assert prov["neurodag_version"] == __version__
    assert prov["parameters"] == {"dt": 0.333, "smooth": "moving_average"}
    assert prov["inputs"] == [
        {"path": str(source), "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    ]
    assert prov["created"].endswith("+00:00")


def test_compressed(tmp_path):
    ds = xr.Dataset({"counts": (("neuron", "time"), np.zeros((100, 1000)))})
    path = write_dataset(ds, tmp_path / "z.nc", stage="test")
    assert path.stat().st_size < 0.1 * ds.counts.nbytes


def test_failed_write_leaves_nothing(tmp_path):
    bad = small_dataset()
    bad.attrs["unserialisable"] = {"nested": "dict"}  # NetCDF attrs cannot hold a dict
    target = tmp_path / "x.nc"
    with pytest.raises((TypeError, ValueError)):
        write_dataset(bad, target, stage="test")
    assert list(tmp_path.iterdir()) == []


CHILD = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np, xarray as xr
    import neurodag.io.netcdf as nc
    target, phase = sys.argv[1], sys.argv[2]
    if phase == "rename":  # stop between the finished temporary file and the rename
        def stall(src, dst):
            print("ready", flush=True); time.sleep(600)
        nc.os.replace = stall
    data = np.random.default_rng(0).normal(size=(4000, 4000))  # ~128 MB: a slow write
    ds = xr.Dataset({"x": (("a", "b"), data)})
    print("writing", flush=True)
    nc.write_dataset(ds, target, stage="test", complevel=9)
    """
)


@pytest.mark.parametrize("phase", ["data", "rename"])
def test_kill_during_write_leaves_no_file(tmp_path, phase):
    target = tmp_path / "x.nc"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(target), phase], stdout=subprocess.PIPE, text=True
    )
    expected = "ready" if phase == "rename" else "writing"
    while (line := child.stdout.readline().strip()) != expected:
        assert line or child.poll() is None, "child ended before writing"
    if phase == "data":
        deadline = time.monotonic() + 60
        while not temporary_path(target, child.pid).exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not target.exists()


def test_kill_keeps_previous_complete_file(tmp_path):
    target = tmp_path / "x.nc"
    write_dataset(small_dataset(), target, stage="first")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(target), "rename"], stdout=subprocess.PIPE, text=True
    )
    while child.stdout.readline().strip() != "ready":
        assert child.poll() is None
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert provenance(open_dataset(target))["stage"] == "first"


def test_open_missing_and_corrupt(tmp_path):
    from neurodag.errors import InputError

    with pytest.raises(InputError, match="not found"):
        open_dataset(tmp_path / "missing.nc")
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"not netcdf" * 100)
    with pytest.raises(InputError, match="not a readable"):
        open_dataset(bad)


def test_rewrite_removes_temporaries_of_killed_writers(tmp_path):
    target = tmp_path / "x.nc"
    with subprocess.Popen(["true"]) as dead:  # a writer that is gone, as after SIGKILL
        pass
    stale = temporary_path(target, dead.pid)
    stale.write_bytes(b"half a NetCDF")
    # a temporary whose writer still runs (here: a sleeping process) must survive
    with subprocess.Popen(["sleep", "60"]) as running:
        busy = temporary_path(target, running.pid)
        busy.write_bytes(b"in progress")
        write_dataset(small_dataset(), target, stage="rerun")
        running.kill()
    assert not stale.exists()
    assert busy.exists()
    assert provenance(open_dataset(target))["stage"] == "rerun"
