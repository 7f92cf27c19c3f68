# Connectome (Dyballa et al. 2024): the dynamic functional connectome of every C. elegans dataset,
# from its homogenized worms; the anatomy dataset's consensus gives the structure-versus-function
# test, and simulated datasets are validated against their truth.nc.


def connectome_datasets():
    return datasets("celegans")


def connectome_inputs(wildcards):
    inputs = {
        "activity": f"results/homogenize/{wildcards.dataset}.nc",
        "truth": truth_file(wildcards.dataset),
    }
    anatomy = config["stages"]["connectome"]["anatomy_dataset"]
    if anatomy and anatomy in datasets("connectome"):
        inputs["anatomy"] = f"results/homogenize/{anatomy}.nc"
    return inputs


STAGE_DATASETS["connectome"] = connectome_datasets


rule connectome:
    input:
        unpack(connectome_inputs),
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
        dataset=alternatives(connectome_datasets()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "neurodag connectome {params.flags} --output {output.nc:q} 2> {log:q}"
