# Homogenize (Simeon et al.): connectomes onto the canonical 300-neuron axis plus their consensus;
# C. elegans worms (their ingest files) onto the canonical neurons and one time step, worms in
# parallel on a Dask cluster sized from the rule's threads.


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
            labels={"stage": "homogenize", "dataset": "{dataset}", "figure": "summary"},
        ),
    log:
        "results/logs/homogenize/{dataset}.log",
    benchmark:
        "results/benchmarks/homogenize/{dataset}.tsv"
    params:
        spec=dataset_spec,
        stage=stage_parameters("homogenize"),
        ingested=homogenize_ingested,
        compute=compute_settings(),
    wildcard_constraints:
        dataset=alternatives(homogenized_datasets()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "neurodag homogenize --spec {params.spec:q} --params {params.stage:q} {params.ingested} "
        "--threads {threads} --memory-mb {resources.mem_mb} --compute {params.compute:q} "
        "--output {output.data:q} --figure {output.figure:q} 2> {log:q}"
