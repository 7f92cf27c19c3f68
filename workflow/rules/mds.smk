# MDS (Burg et al. 2024): most-discriminative-stimuli clustering of functional cell types, from
# every recording's responses to the image stimulus stages.mds.stimulus.

STAGE_DATASETS["mds"] = lambda: datasets_aligning(config["stages"]["mds"]["stimulus"])


rule mds:
    input:
        responses=lambda w: [
            spiking_output(w.dataset, r, config["stages"]["mds"]["stimulus"])
            for r in recordings(w.dataset)
        ],
        truth=lambda w: truth_file(w.dataset),
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
        dataset=alternatives(STAGE_DATASETS["mds"]()),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=0,
    shell:
        "neurodag mds {params.flags} --output {output.nc:q} 2> {log:q}"
