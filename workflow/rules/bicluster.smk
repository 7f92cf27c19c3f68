# Bicluster (Wei et al.): Bayesian bi-clustering of one recording's binned spike counts (the
# spiking ingest's counts.nc of stages.bicluster.recording, default the first; kinds allen and
# spikes), chains in parallel.
# This file is the example to copy for a new stage (docs/stages.md).

STAGE_DATASETS["bicluster"] = spiking_datasets


rule bicluster:
    input:
        counts=lambda w: spiking_output(
            w.dataset, config["stages"]["bicluster"]["recording"], "counts"
        ),
        truth=lambda w: truth_file(w.dataset),
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
        dataset=alternatives(STAGE_DATASETS["bicluster"]()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "neurodag bicluster {params.flags} --output {output.nc:q} 2> {log:q}"
