"""The cross-stage summary of validation figures."""

import numpy as np
import xarray as xr
from conftest import run_cli

from neurodag.io.netcdf import write_dataset
from neurodag.validation import collect


def stage_output(tmp_path, name="allen.nc"):
    ds = xr.Dataset(
        {
            "validation_ari": ((), 0.93, {"description": "ARI vs planted types"}),
            "validation_nmi": (("stimulus_epoch",), [0.8, 0.9]),
            "co_bps": ((), 0.41),
            "rates": (("trial", "time"), np.ones((3, 4))),
            "validation_long": (("neuron",), np.zeros(100)),
        },
        coords={"stimulus_epoch": ["a", "b"]},
    )
    return write_dataset(ds, tmp_path / "mds" / name, stage="mds")


def test_collect_takes_scalars_and_short_validation_vectors(tmp_path):
    table = collect([stage_output(tmp_path)])
    assert set(table["stage"]) == {"mds"}
    assert dict(zip(table["figure"], table["value"], strict=True)) == {
        "ari": 0.93,
        "nmi [stimulus_epoch a]": 0.8,
        "nmi [stimulus_epoch b]": 0.9,
        "co_bps": 0.41,
    }
    assert table.loc[table["figure"] == "ari", "description"].item() == "ARI vs planted types"


def test_summarize_command_writes_html_and_tsv(tmp_path):
    out = tmp_path / "validation.html"
    result = run_cli("summarize", str(stage_output(tmp_path)), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "<h2>mds: allen</h2>" in out.read_text()
    assert "co_bps\t0.41" in out.with_suffix(".tsv").read_text()
