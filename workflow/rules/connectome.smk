# Connectome (Dyballa et al. 2024): the dynamic functional connectome of every C. elegans dataset,
# from its homogenized worms; the anatomy dataset's consensus gives the structure-versus-function
# test (when stages.connectome.anatomy_dataset is an enabled connectome dataset), and simulated
# datasets are validated against their truth.nc.

STAGE_DATASETS["connectome"] = lambda: datasets("celegans")


rule connectome:
    input:
        activity="results/homogenize/{dataset}.nc",
        anatomy=lambda w: [
            f"results/homogenize/{anatomy}.nc"
            for anatomy in [config["stages"]["connectome"]["anatomy_dataset"]]
            if anatomy in datasets("connectome")
        ],
        truth=lambda w: truth_file(w.dataset),
    output:
        nc="results/connectome/{dataset}.nc",
        figures=stage_figures("connectome"),
    log:
        "results/logs/connectome/{dataset}.log",
    benchmark:
        "results/benchmarks/connectome/{dataset}.tsv"
    params:
        flags=stage_flags("connectome"),
    wildcard_constraints:
        dataset=alternatives(STAGE_DATASETS["connectome"]()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "neurodag connectome {params.flags} --output {output.nc:q} 2> {log:q}"
