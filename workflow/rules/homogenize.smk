# Homogenize: connectomes onto the canonical 300-neuron axis, plus their consensus (Simeon et al.).


rule homogenize:
    input:
        homogenize_inputs,
    output:
        data="results/homogenize/{dataset}.nc",
        figure=report(
            "results/homogenize/{dataset}.png",
            caption="../report/homogenize.rst",
            category="homogenize",
            subcategory="{dataset}",
            labels={"stage": "homogenize", "dataset": "{dataset}"},
        ),
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
        "--output {output.data:q} --figure {output.figure:q} 2> {log:q}"
