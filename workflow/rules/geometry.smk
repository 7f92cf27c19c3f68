# Geometry: RDMs, topological RSA (geo-topological transforms), model comparison and population
# geometry (Lin & Kriegeskorte), from trial responses (kind allen) or RDM files (kind rdm).


rule geometry:
    input:
        geometry_inputs,
    output:
        nc="results/geometry/{dataset}.nc",
        rdm=report(
            "results/geometry/{dataset}.rdm.png",
            caption="../report/geometry.rst",
            category="geometry",
            subcategory="{dataset}",
            labels={"stage": "geometry", "dataset": "{dataset}", "figure": "RDMs"},
        ),
        rdm_gt=report(
            "results/geometry/{dataset}.rdm_gt.png",
            caption="../report/geometry.rst",
            category="geometry",
            subcategory="{dataset}",
            labels={"stage": "geometry", "dataset": "{dataset}", "figure": "GT-transformed RDMs"},
        ),
    log:
        "results/logs/geometry/{dataset}.log",
    benchmark:
        "results/benchmarks/geometry/{dataset}.tsv"
    params:
        spec=dataset_spec,
        stage=stage_parameters("geometry"),
        responses=lambda wildcards, input: geometry_responses(wildcards, input),
    wildcard_constraints:
        dataset=alternatives(geometry_datasets()),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "neurodag geometry --spec {params.spec:q} --params {params.stage:q} {params.responses} "
        "--output {output.nc:q} 2> {log:q}"
