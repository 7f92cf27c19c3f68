# Homogenize (Simeon et al.): connectomes onto the canonical 300-neuron axis plus their consensus;
# C. elegans worms (their ingest files) onto the canonical neurons and one time step, worms in
# parallel on the stage's Dask cluster.


def homogenize_datasets():
    return datasets("connectome") + datasets("celegans")


def homogenize_inputs(wildcards):
    """A connectome's own files, or a C. elegans dataset's ingest files."""
    dataset = wildcards.dataset
    if dataset_entry(dataset)["kind"] == "celegans":
        return {"sources": [f"results/ingest/{dataset}/{r}.nc" for r in recordings(dataset)]}
    return {"sources": raw_files(dataset)}


STAGE_DATASETS["homogenize"] = homogenize_datasets


rule homogenize:
    input:
        unpack(homogenize_inputs),
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
        dataset=alternatives(homogenize_datasets()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "neurodag homogenize {params.flags} --output {output.nc:q} 2> {log:q}"
