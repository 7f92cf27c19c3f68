# MDS (Burg et al. 2024): most-discriminative-stimuli clustering of functional cell types, from
# every recording's responses to the image stimulus stages.mds.stimulus.


def mds_datasets():
    return allen_datasets_aligning(config["stages"]["mds"]["stimulus"])


def mds_inputs(wildcards):
    dataset, stimulus = wildcards.dataset, config["stages"]["mds"]["stimulus"]
    return {
        "responses": [allen_output(dataset, r, stimulus) for r in recordings(dataset)],
        "truth": truth_file(dataset),
    }


STAGE_DATASETS["mds"] = mds_datasets


rule mds:
    input:
        unpack(mds_inputs),
    output:
        nc="results/mds/{dataset}.nc",
        figures=stage_figures("mds"),
    log:
        "results/logs/mds/{dataset}.log",
    benchmark:
        "results/benchmarks/mds/{dataset}.tsv"
    params:
        flags=stage_flags("mds"),
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
        "neurodag mds {params.flags} --output {output.nc:q} 2> {log:q}"
