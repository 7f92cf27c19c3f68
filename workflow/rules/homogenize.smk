# Homogenize: connectomes onto the canonical 300-neuron axis, plus their consensus (Simeon et al.).


rule homogenize:
    input:
        homogenize_inputs,
    output:
        "results/homogenize/{dataset}.nc",
    log:
        "results/logs/homogenize/{dataset}.log",
    benchmark:
        "results/benchmarks/homogenize/{dataset}.tsv"
    params:
        spec=dataset_spec,
        stage=stage_parameters("homogenize"),
    wildcard_constraints:
        dataset=alternatives(homogenized_datasets()),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "neurodag homogenize --spec {params.spec:q} --params {params.stage:q} "
        "--output {output:q} 2> {log:q}"
