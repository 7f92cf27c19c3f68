# Connectome (Dyballa et al. 2024): the dynamic functional connectome of every C. elegans dataset,
# from its homogenized worms; simulated datasets are also validated against their truth.nc, and the
# anatomy dataset's consensus gives the structure-versus-function test.


rule connectome:
    input:
        unpack(connectome_stage_inputs),
    output:
        result="results/connectome/{dataset}.nc",
        time_factors=report(
            "results/connectome/{dataset}.time_factors.png",
            caption="../report/connectome.rst",
            category="connectome",
            subcategory="{dataset}",
            labels={"stage": "connectome", "dataset": "{dataset}", "figure": "time factors"},
        ),
        communities=report(
            "results/connectome/{dataset}.communities.png",
            caption="../report/connectome.rst",
            category="connectome",
            subcategory="{dataset}",
            labels={"stage": "connectome", "dataset": "{dataset}", "figure": "communities"},
        ),
        rank=report(
            "results/connectome/{dataset}.rank.png",
            caption="../report/connectome.rst",
            category="connectome",
            subcategory="{dataset}",
            labels={"stage": "connectome", "dataset": "{dataset}", "figure": "rank selection"},
        ),
    log:
        "results/logs/connectome/{dataset}.log",
    benchmark:
        "results/benchmarks/connectome/{dataset}.tsv"
    params:
        stage=stage_parameters("connectome"),
        options=connectome_stage_options,
    wildcard_constraints:
        dataset=alternatives(celegans_datasets()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "neurodag connectome --input {input.activity:q} {params.options} "
        "--params {params.stage:q} --threads {threads} --memory-mb {resources.mem_mb} "
        "--output {output.result:q} 2> {log:q}"
