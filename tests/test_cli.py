"""The command line: fast start, inspect, clear failures with no output left behind."""

import subprocess
import sys

from conftest import run_cli

HEAVY = ("torch", "pymc", "dask.distributed", "xarray", "tensorly")


def test_help_imports_nothing_heavy():
    code = (
        "import sys; from neurodag.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('heavy:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "heavy:"


def test_help_lists_stages():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("homogenize", "inspect", "config"):
        assert command in result.stdout


def test_homogenize_and_inspect(tmp_path):
    out = tmp_path / "connectome.nc"
    spec = '{"kind": "connectome", "format": "wormneuroatlas", "sources": ["witvliet_2020_7"]}'
    result = run_cli("homogenize", "--spec", spec, "-o", str(out))
    assert result.returncode == 0, result.stderr
    report = run_cli("inspect", str(out))
    assert report.returncode == 0, report.stderr
    for expected in ("dimensions:", "pre=300", "(source, synapse, pre, post)", "stage: homogenize"):
        assert expected in report.stdout


def test_missing_input_file_fails_cleanly(tmp_path):
    out = tmp_path / "x.nc"
    spec = '{"kind": "connectome", "format": "openworm-csv", "path": "/nonexistent/edges.csv"}'
    result = run_cli("homogenize", "--spec", spec, "-o", str(out))
    assert result.returncode == 2
    assert "/nonexistent/edges.csv" in result.stderr
    assert "path" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_inspect_missing_file(tmp_path):
    result = run_cli("inspect", str(tmp_path / "none.nc"))
    assert result.returncode == 2
    assert "none.nc" in result.stderr


def test_inspect_plot(tmp_path):
    import numpy as np
    import xarray as xr

    from neurodag.io.netcdf import write_dataset

    traces = np.random.default_rng(0).normal(size=(2, 50, 4))
    ds = xr.Dataset(
        {
            "activity": (("worm", "time", "neuron"), traces),
            "speed": (("time",), np.linspace(0, 1, 50), {"units": "mm/s"}),
            "name": (("neuron",), np.array(["a", "b", "c", "d"])),
        },
        coords={"worm": ["w0", "w1"], "time": np.arange(50) / 3},
    )
    path = write_dataset(ds, tmp_path / "x.nc", stage="test")
    result = run_cli("inspect", str(path), "--plot")
    assert result.returncode == 0, result.stderr
    png = tmp_path / "x.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "quick look" in result.stdout
