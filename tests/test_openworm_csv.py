"""The openworm-csv reader and its bad inputs: clear error, file and field named, no output."""

import logging
import textwrap

import numpy as np
import pytest
from conftest import run_cli

from neurodag.errors import InputError
from neurodag.homogenize.connectomes import build_connectome
from neurodag.io.openworm_csv import read_openworm_csv

GOOD = """\
Origin,Target,Type,Number of Connections,Neurotransmitter
AVAL,AVAR,GapJunction,5,
AVAR,AVAL,GapJunction,5,
ASHL,AVAL,Send,8,Glutamate
AVAL,VB01,Send,2,Acetylcholine
AVBL,MDL01,Send,3,Acetylcholine
AVAL,AVBR,Send,0,Acetylcholine
"""


def write(tmp_path, text, name="edges.csv"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_reads_edges_normalises_names_and_logs_muscles(tmp_path, caplog):
    path = write(tmp_path, GOOD)
    with caplog.at_level(logging.INFO):
        edges = read_openworm_csv(path)
    assert set(edges.synapse) == {"chemical", "electrical"}
    assert ("AVAL", "VB1") in set(zip(edges.pre, edges.post, strict=True))
    assert "MDL01" in caplog.text and "VB01->VB1" in caplog.text
    assert "MDL01" not in set(edges.post)


def test_dataset_from_csv_folder(tmp_path):
    write(tmp_path, GOOD, "a.csv")
    write(tmp_path, GOOD.replace("Send,8", "Send,4"), "b.csv")
    ds = build_connectome({"kind": "connectome", "format": "openworm-csv", "path": str(tmp_path)})
    assert list(ds.source.values) == ["a", "b", "consensus"]
    chem = ds.weight.sel(synapse="chemical", pre="ASHL", post="AVAL")
    np.testing.assert_allclose(chem.values, [8, 4, 6])
    gap = ds.weight.sel(source="consensus", synapse="electrical")
    assert gap.sel(pre="AVAL", post="AVAR") == gap.sel(pre="AVAR", post="AVAL") == 5
    assert ds.support.sel(synapse="chemical", pre="AVAL", post="VB1") == 2


BAD_CASES = {
    "missing column": (
        "Origin,Target,Number of Connections\nAVAL,AVAR,5\n",
        "Type",
        "missing column",
    ),
    "negative count": (GOOD.replace("Send,8", "Send,-8"), "Number of Connections", "negative"),
    "non-numeric count": (
        GOOD.replace("Send,8", "Send,eight"),
        "Number of Connections",
        "not a number",
    ),
    "unknown neuron": (GOOD.replace("ASHL,AVAL", "ASHL,AVXX"), "Target", "AVXX"),
    "unknown type": (GOOD.replace("Send,8", "Sned,8"), "Type", "Sned"),
    "empty file": ("", None, "empty"),
    "binary garbage": (None, None, "not a readable"),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_names_file_and_field(tmp_path, case):
    text, field, words = BAD_CASES[case]
    path = tmp_path / "edges.csv"
    if text is None:
        path.write_bytes(b"\xff\xfe\x00\x89PNG\x00\x00" * 50)
    else:
        path.write_text(text)
    with pytest.raises(InputError) as info:
        read_openworm_csv(path)
    assert info.value.path == str(path)
    if field:
        assert field in info.value.field
    assert words in str(info.value)


@pytest.mark.parametrize("case", ["negative count", "unknown neuron", "missing column"])
def test_cli_bad_input_exits_nonzero_and_writes_nothing(tmp_path, case):
    text, field, _ = BAD_CASES[case]
    path = write(tmp_path, text)
    out = tmp_path / "out" / "connectome.nc"
    spec = f'{{"kind": "connectome", "format": "openworm-csv", "path": "{path}"}}'
    result = run_cli("homogenize", "--spec", spec, "--output", str(out))
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1, result.stderr
    assert str(path) in error_lines[0] and field in error_lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob("out/.*.tmp"))


def test_cli_missing_file(tmp_path):
    missing = tmp_path / "nope.csv"
    spec = f'{{"kind": "connectome", "format": "openworm-csv", "path": "{missing}"}}'
    result = run_cli("homogenize", "--spec", spec, "--output", str(tmp_path / "o.nc"))
    assert result.returncode == 2
    assert str(missing) in result.stderr and "no such file" in result.stderr
    assert not (tmp_path / "o.nc").exists()


def test_cli_unreadable_file(tmp_path):
    path = write(tmp_path, GOOD)
    path.chmod(0)
    try:
        with open(path):
            pytest.skip("running as a user who can read mode-000 files (root)")
    except PermissionError:
        pass
    spec = f'{{"kind": "connectome", "format": "openworm-csv", "path": "{path}"}}'
    result = run_cli("homogenize", "--spec", spec, "--output", str(tmp_path / "o.nc"))
    assert result.returncode == 2 and str(path) in result.stderr
