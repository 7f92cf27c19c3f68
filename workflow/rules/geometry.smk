# Geometry (Lin & Kriegeskorte): RDMs, topological RSA (geo-topological transforms), model
# comparison and population geometry, from trial responses (kinds allen and spikes: every recording's
# {stages.geometry.stimulus}.nc) or RDM files (kind rdm).

STAGE_DATASETS["geometry"] = lambda: datasets("rdm") + datasets_aligning(
    config["stages"]["geometry"]["stimulus"]
)


rule geometry:
    input:
        responses=lambda w: (
            raw_files(w.dataset)
            if dataset_entry(w.dataset)["kind"] == "rdm"
            else [
                spiking_output(w.dataset, r, config["stages"]["geometry"]["stimulus"])
                for r in recordings(w.dataset)
            ]
        ),
        truth=lambda w: truth_file(w.dataset),
    output:
        nc="results/geometry/{dataset}.nc",
        figures=stage_figures("geometry"),
    log:
        "results/logs/geometry/{dataset}.log",
    benchmark:
        "results/benchmarks/geometry/{dataset}.tsv"
    params:
        flags=stage_flags("geometry"),
    wildcard_constraints:
        dataset=alternatives(STAGE_DATASETS["geometry"]()),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "neurodag geometry {params.flags} --output {output.nc:q} 2> {log:q}"
