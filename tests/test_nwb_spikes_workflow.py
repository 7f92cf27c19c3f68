"""A lab's NWB spiking session (kind spikes, format nwb) through the workflow: ingest, then the
spiking stages on its counts and trial responses (in a scratch copy of the repo)."""

import pytest
from conftest import snakemake
from nwb_layouts import write_session
from test_workflow import workdir  # noqa: F401 (fixture)

from neurodag.io.netcdf import open_dataset

# Only the lab's dataset runs; tiny stage parameters, so the run takes seconds.
CONFIG = """
datasets:
  connectome: {{kind: connectome, format: wormneuroatlas, enabled: false}}
  allen: {{kind: allen, format: simulated, enabled: false}}
  worms: {{kind: celegans, format: simulated, enabled: false}}
  lab: {{kind: spikes, format: nwb, path: "{path}/*.nwb"}}
stages:
  ingest:
    spikes:
      alignments:
        go: {{column: go_cue_time, window_s: [-0.2, 0.5], bin_size_s: 0.05, condition: [target]}}
  bicluster:
    regions: null
    epochs: [task]
    n_iterations: 6
    burn_in: 2
    chains: 1
    min_rate_hz: 0
  geometry: {{stimulus: go, regions: null, min_neurons: 2, splits: 2, n_bootstrap: 2}}
  latents:
    stimulus: go
    regions: null
    steps: 4
    batch_size: 8
    checkpoint_every: 2
    log_every: 2
    forward_bins: 3
"""
STAGES = ("bicluster", "geometry", "latents")


def _config(workdir, tmp_path):  # noqa: F811
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    write_session(sessions / "mouse1_day1.nwb")
    (workdir / "lab.yaml").write_text(CONFIG.format(path=sessions))
    return "lab.yaml"


def test_dry_run_plans_ingest_and_the_spiking_stages(workdir, tmp_path):  # noqa: F811
    config = _config(workdir, tmp_path)
    result = snakemake("-n", "--cores", "1", "--configfile", config, cwd=workdir)
    assert result.returncode == 0, result.stderr
    for path in (
        "results/ingest/lab/mouse1_day1/counts.nc",
        "results/ingest/lab/mouse1_day1/go.nc",
        *(f"results/{stage}/lab.nc" for stage in STAGES),
    ):
        assert path in result.stdout
    assert "ingest_lab" in result.stdout and "mds" not in result.stdout


@pytest.mark.slow
def test_ingest_and_the_spiking_stages_run(workdir, tmp_path):  # noqa: F811
    config = _config(workdir, tmp_path)
    targets = [f"results/{stage}/lab.nc" for stage in STAGES]
    result = snakemake(*targets, "--cores", "2", "--configfile", config, cwd=workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    folder = workdir / "results" / "ingest" / "lab" / "mouse1_day1"
    counts = open_dataset(folder / "counts.nc")
    assert counts["counts"].sum() > 0 and "behavior" in counts
    assert open_dataset(folder / "go.nc").sizes["trial"] == 21  # 3 trials without a go cue
    for stage in STAGES:
        assert open_dataset(workdir / "results" / stage / "lab.nc").sizes


# A simulated session in the generic layout (kind spikes, format simulated) with the bicluster
# piece (tiny, a few iterations: it only has to run) and the geometry piece: simulate, ingest and
# the stages run, and validation.tsv holds geometry's recovery of the planted regions.
SIMULATED = """
datasets:
  connectome: {kind: connectome, format: wormneuroatlas, enabled: false}
  allen: {kind: allen, format: simulated, enabled: false}
  worms: {kind: celegans, format: simulated, enabled: false}
  sim:
    kind: spikes
    format: simulated
    simulate:
      seed: 4
      n_filtered_units: 0
      pieces:
        - bicluster: {neurons_per_cluster: 5, n_time: 60}
        - geometry: {n_images: 12, image_size: 12, neurons_per_region: 24, repeats: 8}
    alignments:
      natural_scenes:
        table: natural_scenes
        column: stim_on_time
        window_s: [0.0, 0.25]
        bin_size_s: 0.01
        condition: [frame]
stages:
  bicluster: {regions: null, epochs: [spontaneous], n_iterations: 6, burn_in: 2, chains: 2}
  geometry:
    stimulus: natural_scenes
    regions: [VISp, VISl, VISal, VISam]
    min_neurons: 4
    splits: 3
    n_bootstrap: 5
    grid_step: 0.5
"""


@pytest.mark.slow
def test_simulated_generic_session_recovery_in_the_validation_table(workdir):  # noqa: F811
    import pandas as pd

    (workdir / "sim.yaml").write_text(SIMULATED)
    result = snakemake(
        "results/validation.tsv", "--cores", "2", "--configfile", "sim.yaml", cwd=workdir
    )
    assert result.returncode == 0, result.stderr[-5000:]
    table = pd.read_csv(workdir / "results" / "validation.tsv", sep="\t")
    rows = table[(table["stage"] == "geometry") & (table["dataset"] == "sim")]
    raw = rows[rows["figure"] == "identification_accuracy [transform raw]"]
    assert len(raw) == 1 and float(raw["value"].iloc[0]) >= 0.75, rows
    assert set(table["dataset"]) == {"sim"} and "bicluster" in set(table["stage"])
