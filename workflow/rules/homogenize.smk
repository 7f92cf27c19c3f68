# Homogenize (Simeon et al.): connectomes onto the canonical 300-neuron axis plus their consensus;
# C. elegans worms (their ingest files) onto the canonical neurons and one time step, worms in
# parallel on a Dask cluster sized from the rule's threads.


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
        ingested=homogenize_ingested,
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
        "--threads {threads} --memory-mb {resources.mem_mb} --output {output:q} 2> {log:q}"
