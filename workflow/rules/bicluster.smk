# Bicluster (Wei et al.): Bayesian bi-clustering of one recording's binned spike counts (the
# allen ingest's counts.nc of stages.bicluster.recording, default the first), chains in parallel.
# This rule file is the example to copy for a new stage (docs/stages.md).


def bicluster_datasets():
    return datasets("allen")


def bicluster_inputs(wildcards):
    recording = config["stages"]["bicluster"]["recording"]
    return {
        "counts": allen_output(wildcards.dataset, recording, "counts"),
        "truth": truth_file(wildcards.dataset),
    }


STAGE_DATASETS["bicluster"] = bicluster_datasets


rule bicluster:
    input:
        unpack(bicluster_inputs),
    output:
        nc="results/bicluster/{dataset}.nc",
        figures=stage_figures("bicluster"),
    log:
        "results/logs/bicluster/{dataset}.log",
    benchmark:
        "results/benchmarks/bicluster/{dataset}.tsv"
    params:
        flags=stage_flags("bicluster"),
    wildcard_constraints:
        dataset=alternatives(bicluster_datasets()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "neurodag bicluster {params.flags} --output {output.nc:q} 2> {log:q}"
