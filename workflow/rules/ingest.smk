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
# Ingest: raw recordings into the data contracts (docs/data-model.md).
# Allen sessions: one job per recording reads the NWB once and writes counts.nc and one
# {stimulus}.nc per aligned stimulus (+ figures); one rule per dataset, so that the stimulus
# files are declared outputs.

for _name in allen_datasets():

    rule:
        name:
            f"ingest_allen_{_name}"
        input:
            allen_session_input(_name),
        output:
            counts=f"results/ingest/{_name}/{{recording}}/counts.nc",
            figure=f"results/ingest/{_name}/{{recording}}/counts.png",
            responses=[f"results/ingest/{_name}/{{recording}}/{s}.nc" for s in allen_stimuli(_name)],
            figures=[f"results/ingest/{_name}/{{recording}}/{s}.png" for s in allen_stimuli(_name)],
        log:
            f"results/logs/ingest/{_name}/{{recording}}.log",
        benchmark:
            f"results/benchmarks/ingest/{_name}/{{recording}}.tsv"
        params:
            spec=json.dumps(config["datasets"][_name]),
            stage=stage_parameters("ingest"),
            outdir=lambda wildcards, output: os.path.dirname(output.counts),
        wildcard_constraints:
            recording="[^/]+",
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=30,
        shell:
            "neurodag ingest-allen --spec {params.spec:q} --params {params.stage:q} "
            "--input {input:q} --output {params.outdir:q} 2> {log:q}"
