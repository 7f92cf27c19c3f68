# Geometry (Lin & Kriegeskorte): RDMs, topological RSA (geo-topological transforms), model
# comparison and population geometry, from trial responses (kind allen: every recording's
# {stages.geometry.stimulus}.nc) or RDM files (kind rdm).


def geometry_datasets():
    stimulus = config["stages"]["geometry"]["stimulus"]
    return datasets("rdm") + allen_datasets_aligning(stimulus)


def geometry_inputs(wildcards):
    dataset = wildcards.dataset
    if dataset_entry(dataset)["kind"] == "rdm":
        responses = raw_files(dataset)
    else:
        stimulus = config["stages"]["geometry"]["stimulus"]
        responses = [allen_output(dataset, r, stimulus) for r in recordings(dataset)]
    return {"responses": responses, "truth": truth_file(dataset)}


STAGE_DATASETS["geometry"] = geometry_datasets


rule geometry:
    input:
        unpack(geometry_inputs),
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
        dataset=alternatives(geometry_datasets()),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "neurodag geometry {params.flags} --output {output.nc:q} 2> {log:q}"
