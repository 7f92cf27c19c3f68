# MDS: most-discriminative-stimuli clustering of functional cell types (Burg et al. 2024).

from pathlib import Path


def mds_datasets():
    """Allen-kind datasets (simulated or recorded) with image trial responses."""
    return enabled_datasets(config, kind="allen")


def mds_files():
    return expand("results/mds/{dataset}.nc", dataset=mds_datasets())


def mds_inputs(wildcards):
    """The ingest image-response file of every recording of the dataset."""
    stimulus = config["stages"]["mds"]["stimulus"]
    return [
        f"results/ingest/{wildcards.dataset}/{recording}/{stimulus}.nc"
        for recording in _mds_recordings(wildcards.dataset)
    ]


def _mds_recordings(dataset):
    """Recordings of a dataset: the Allen ingest's helper when present (issue 4), else the
    recordings whose ingest folders exist."""
    if "dataset_recordings" in globals():
        return globals()["dataset_recordings"](dataset)
    return sorted(p.parent.name for p in Path(f"results/ingest/{dataset}").glob("*/*.nc"))


def mds_truth(wildcards):
    """The simulated session's truth file, for validation (nothing for recorded data)."""
    if config["datasets"][wildcards.dataset]["format"] == "simulated":
        return f"results/simulate/{wildcards.dataset}/truth.nc"
    return []


rule mds:
    input:
        responses=mds_inputs,
        truth=mds_truth,
    output:
        clusters="results/mds/{dataset}.nc",
        figure=report(
            "results/mds/{dataset}.mds.png",
            caption="../report/mds.rst",
            category="mds",
        ),
    log:
        "results/logs/mds/{dataset}.log",
    benchmark:
        "results/benchmarks/mds/{dataset}.tsv"
    params:
        stage=stage_parameters("mds"),
        device=config["compute"]["device"],
        truth=lambda wildcards, input: f"--truth {input.truth}" if input.truth else "",
    wildcard_constraints:
        dataset=alternatives(mds_datasets()),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=0,
    shell:
        "neurodag mds --input {input.responses:q} --params {params.stage:q} "
        "--device {params.device} {params.truth} --output {output.clusters:q} 2> {log:q}"
