# Connectome (Dyballa et al. 2024): the dynamic functional connectome of every C. elegans dataset,
# from its homogenized worms; simulated datasets are also validated against their truth.nc, and the
# anatomy dataset's consensus gives the structure-versus-function test.


def connectome_inputs(wildcards):
    inputs = {"activity": f"results/homogenize/{wildcards.dataset}.nc"}
    anatomy = config["stages"]["connectome"]["anatomy_dataset"]
    if anatomy:
        inputs["anatomy"] = f"results/homogenize/{anatomy}.nc"
    if config["datasets"][wildcards.dataset]["format"] == "simulated":
        inputs["truth"] = f"results/simulate/{wildcards.dataset}/truth.nc"
    return inputs


def connectome_options(wildcards, input):
    options = [f"--anatomy {shlex.quote(input.anatomy)}"] if "anatomy" in input.keys() else []
    if "truth" in input.keys():
        options.append(f"--truth {shlex.quote(input.truth)}")
    return " ".join(options)


def connectome_files():
    return expand("results/connectome/{dataset}.nc", dataset=celegans_datasets())


rule connectome:
    input:
        unpack(connectome_inputs),
    output:
        "results/connectome/{dataset}.nc",
        report(
            "results/connectome/{dataset}.time_factors.png",
            caption="../report/connectome.rst",
            category="connectome",
        ),
        "results/connectome/{dataset}.communities.png",
        "results/connectome/{dataset}.rank.png",
    log:
        "results/logs/connectome/{dataset}.log",
    benchmark:
        "results/benchmarks/connectome/{dataset}.tsv"
    params:
        stage=stage_parameters("connectome"),
        options=connectome_options,
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
        "--output {output[0]:q} 2> {log:q}"
