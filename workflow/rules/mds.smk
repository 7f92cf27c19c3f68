# MDS: most-discriminative-stimuli clustering of functional cell types (Burg et al. 2024).


rule mds:
    input:
        responses=mds_inputs,
        truth=simulation_truth,
    output:
        clusters="results/mds/{dataset}.nc",
        figure=report(
            "results/mds/{dataset}.mds.png",
            caption="../report/mds.rst",
            category="mds",
            subcategory="{dataset}",
            labels={"stage": "mds", "dataset": "{dataset}", "figure": "MDS per cluster"},
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
