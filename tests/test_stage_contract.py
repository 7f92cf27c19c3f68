"""The stage contract: every registered stage keeps it, and a new stage needs only its four places.

`test_a_toy_stage_joins_through_its_four_places` adds a stage the way docs/stages.md says (its
package, one rule file, one schema block; the docs line is checked for the real stages below) in a
scratch copy of the package and workflow, and runs it: CLI, rule, default targets, summary table.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, snakemake
from scratch_workflow import copy_workflow

from neurodag.stages import DECLARATIONS, VERBS, stages


def test_every_registered_stage_keeps_the_contract():
    names = list(stages())
    assert names == ["homogenize", "geometry", "latents", "mds", "connectome", "bicluster"]
    for name, stage in stages().items():
        module = stage.module
        for attribute in DECLARATIONS + VERBS:
            assert hasattr(module, attribute), f"{name}: {attribute}"
        assert stage.input_roles and stage.figure_names
        assert (REPO / "workflow" / "rules" / f"{name}.smk").exists()


def test_every_stage_has_its_line_in_the_docs():
    table = (REPO / "docs" / "data-model.md").read_text().split("## Stages", 1)[1]
    for name, stage in stages().items():
        assert f"| {name} |" in table and f"`{stage.package}`" in table, name


def test_help_lists_every_stage_without_importing_the_stages():
    code = (
        "import sys\nfrom neurodag.cli import build_parser\nbuild_parser()\n"
        "heavy = [m for m in ('numpy', 'xarray', 'torch', 'neurodag.bicluster.stage') "
        "if m in sys.modules]\nprint(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


TOY_PACKAGE = '''
"""A toy stage: mean firing rate per unit (the stage-contract test)."""

from neurodag.stages import lazy_verbs

HELP = "toy: mean rate per unit"
INPUTS = {"counts": "ingest counts.nc"}
FIGURES = ("rates",)

__getattr__ = lazy_verbs(__name__ + ".stage")
'''

TOY_STAGE = """
from pathlib import Path

import xarray as xr

from neurodag.io.responses import read_spiking


def run(inputs, params, *, compute, dataset=None, output=None):
    ds = read_spiking(inputs["counts"][0], "counts", ("neuron", "time"), key="stages.toy")
    rate = ds["counts"].mean("time") / ds.attrs["bin_size_s"]
    return xr.Dataset({"rate": rate[rate >= params["min_rate_hz"]].drop_vars(
        [c for c in rate.coords if c != "neuron"])})


def validate(result, truth):
    return xr.Dataset({"validation_units": result.sizes["neuron"]})


def figures(result, stem):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.hist(result["rate"].values)
    path = Path(f"{stem}.rates.png")
    fig.savefig(path)
    return [path]
"""

TOY_RULE = """
STAGE_DATASETS["toy"] = lambda: datasets("allen")


rule toy:
    input:
        counts=lambda w: spiking_output(w.dataset, None, "counts"),
        truth=lambda w: truth_file(w.dataset),
    output:
        nc="results/toy/{dataset}.nc",
        figures=stage_figures("toy"),
    log:
        "results/logs/toy/{dataset}.log",
    params:
        flags=stage_flags("toy"),
    wildcard_constraints:
        dataset=alternatives(STAGE_DATASETS["toy"]()),
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "neurodag toy {params.flags} --output {output.nc:q} 2> {log:q}"
"""

TOY_SCHEMA = """      toy:
        x-package: neurodag.toy
        description: A toy stage (the stage-contract test).
        type: object
        default: {}
        additionalProperties: false
        properties:
          min_rate_hz: {description: Units below this rate are left out., type: number,
                        default: 0.0}
"""

TINY = """
datasets:
  tiny:
    kind: allen
    format: simulated
    simulate: {seed: 1}
    responses: {}
"""


@pytest.mark.slow
def test_a_toy_stage_joins_through_its_four_places(tmp_path):
    import os

    package = tmp_path / "src" / "neurodag"
    shutil.copytree(REPO / "src" / "neurodag", package, ignore=shutil.ignore_patterns("__py*"))
    (package / "toy").mkdir()
    (package / "toy" / "__init__.py").write_text(TOY_PACKAGE)
    (package / "toy" / "stage.py").write_text(textwrap.dedent(TOY_STAGE))
    schema = package / "schemas" / "config.schema.yaml"
    text = schema.read_text()
    anchor = "\n      bicluster:\n"
    schema.write_text(text.replace(anchor, "\n" + TOY_SCHEMA + anchor[1:], 1))
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "workflow" / "rules" / "toy.smk").write_text(TOY_RULE)
    (workdir / "tiny.yaml").write_text(TINY)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}

    help_text = subprocess.run(
        [sys.executable, "-m", "neurodag", "toy", "--help"], env=env, capture_output=True, text=True
    )
    assert help_text.returncode == 0 and "toy: mean rate per unit" in help_text.stdout

    plan = subprocess.run(
        ["snakemake", "-n", "--configfile", "tiny.yaml"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "results/toy/tiny.nc" in plan.stdout  # in the default targets and the summary

    run = subprocess.run(
        ["snakemake", "--cores", "2", "results/toy/tiny.nc", "--configfile", "tiny.yaml"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (workdir / "results" / "toy" / "tiny.rates.png").exists()
    summary = subprocess.run(
        [sys.executable, "-m", "neurodag", "summarize", "results/toy/tiny.nc", "-o", "v.html"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert summary.returncode == 0, summary.stderr
    table = (workdir / "v.tsv").read_text()
    assert "toy\ttiny\tunits\t" in table


@pytest.mark.slow
def test_the_default_profile_applies_and_a_failing_ingest_shows_its_error(tmp_path):
    """`snakemake --cores all` picks up profiles/default (show-failed-logs): the console shows
    the error line naming the file, without asking for the log."""
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "data").mkdir()
    (workdir / "data" / "worm.nwb").write_bytes(b"not hdf5")
    (workdir / "bad.yaml").write_text(
        "datasets:\n  lab:\n    kind: celegans\n    format: celegans-nwb\n    path: data\n"
    )
    result = snakemake(
        "--cores", "all", "results/ingest/lab/worm.nc", "--configfile", "bad.yaml", cwd=workdir
    )
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "neurodag ingest: error:" in console and "worm.nwb" in console
    assert not (workdir / "results" / "ingest" / "lab" / "worm.nc").exists()
