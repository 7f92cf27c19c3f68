# Ingest: each C. elegans recording into the data model, results/ingest/{dataset}/{recording}.nc.


rule ingest_celegans:
    input:
        ingest_inputs,
    output:
        "results/ingest/{dataset}/{recording}.nc",
    log:
        "results/logs/ingest/{dataset}/{recording}.log",
    benchmark:
        "results/benchmarks/ingest/{dataset}/{recording}.tsv"
    params:
        spec=dataset_spec,
        stage=stage_parameters("ingest"),
    wildcard_constraints:
        dataset=alternatives(celegans_datasets()),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "neurodag ingest --spec {params.spec:q} --params {params.stage:q} "
        "--recording {wildcards.recording:q} --input {input:q} --output {output:q} 2> {log:q}"
