# Homogenize (Simeon et al.): connectomes onto the canonical 300-neuron axis plus their consensus;
# C. elegans worms (their ingest files) onto the canonical neurons and one time step, worms in
# parallel on the stage's Dask cluster.

STAGE_DATASETS["homogenize"] = lambda: datasets("connectome") + datasets("celegans")


rule homogenize:
    input:
        # a C. elegans dataset's ingest files, or a connectome's own files
        sources=lambda w: (
            [f"results/ingest/{w.dataset}/{r}.nc" for r in recordings(w.dataset)]
            if dataset_entry(w.dataset)["kind"] == "celegans"
            else raw_files(w.dataset)
        ),
    output:
        nc="results/homogenize/{dataset}.nc",
        figures=stage_figures("homogenize"),
    log:
        "results/logs/homogenize/{dataset}.log",
    benchmark:
        "results/benchmarks/homogenize/{dataset}.tsv"
    params:
        flags=stage_flags("homogenize"),
    wildcard_constraints:
        dataset=alternatives(STAGE_DATASETS["homogenize"]()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "neurodag homogenize {params.flags} --output {output.nc:q} 2> {log:q}"
