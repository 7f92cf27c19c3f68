# Ingest: raw recordings into the data contracts (docs/data-model.md).
# Allen sessions: counts.nc and each aligned {stimulus}.nc are separate jobs (they run in parallel).


rule ingest_allen_counts:
    input:
        allen_session_file,
    output:
        "results/ingest/{dataset}/{recording}/counts.nc",
        "results/ingest/{dataset}/{recording}/counts.png",
    log:
        "results/logs/ingest/{dataset}/{recording}.counts.log",
    benchmark:
        "results/benchmarks/ingest/{dataset}/{recording}.counts.tsv"
    params:
        spec=dataset_spec,
        stage=stage_parameters("ingest"),
        outdir=subpath(output[0], parent=True),
    wildcard_constraints:
        dataset=alternatives(allen_datasets()),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "neurodag ingest-allen --spec {params.spec:q} --params {params.stage:q} "
        "--input {input:q} --only counts --output {params.outdir:q} 2> {log:q}"


rule ingest_allen_responses:
    input:
        allen_session_file,
    output:
        "results/ingest/{dataset}/{recording}/{stimulus}.nc",
        "results/ingest/{dataset}/{recording}/{stimulus}.png",
    log:
        "results/logs/ingest/{dataset}/{recording}.{stimulus}.log",
    benchmark:
        "results/benchmarks/ingest/{dataset}/{recording}.{stimulus}.tsv"
    params:
        spec=dataset_spec,
        stage=stage_parameters("ingest"),
        outdir=subpath(output[0], parent=True),
    wildcard_constraints:
        dataset=alternatives(allen_datasets()),
        stimulus=alternatives(
            sorted({s for d in allen_datasets() for s in allen_stimuli(d)} - {"counts"})
        ),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "neurodag ingest-allen --spec {params.spec:q} --params {params.stage:q} "
        "--input {input:q} --only {wildcards.stimulus:q} --output {params.outdir:q} 2> {log:q}"
