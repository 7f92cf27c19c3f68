# Simulate: datasets with format `simulated` are written by `neurodag simulate <kind>` in their real
# format (C. elegans: one NWB per worm) plus truth.nc. One rule per dataset, so that every file it
# writes is a declared output that ingest (and any stage wanting truth.nc) can depend on.

import os


for _name in simulated_datasets("celegans"):

    rule:
        name:
            f"simulate_{_name}"
        output:
            truth=f"results/simulate/{_name}/truth.nc",
            recordings=[f"results/simulate/{_name}/{r}.nwb" for r in recordings(_name)],
        log:
            f"results/logs/simulate/{_name}.log",
        benchmark:
            f"results/benchmarks/simulate/{_name}.tsv"
        params:
            spec=json.dumps(config["datasets"][_name]),
            folder=lambda wildcards, output: os.path.dirname(output.truth),
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        shell:
            "neurodag simulate celegans --spec {params.spec:q} --output {params.folder:q} "
            "2> {log:q}"
# Simulated datasets in their real file formats, each with a ground-truth file.


rule simulate_allen:
    output:
        nwb="results/simulate/{dataset}/session.nwb",
        truth="results/simulate/{dataset}/truth.nc",
    log:
        "results/logs/simulate/{dataset}.log",
    benchmark:
        "results/benchmarks/simulate/{dataset}.tsv"
    params:
        spec=dataset_spec,
        outdir=subpath(output.nwb, parent=True),
    wildcard_constraints:
        dataset=alternatives(simulated_allen_datasets()),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "neurodag simulate allen --spec {params.spec:q} --output {params.outdir:q} 2> {log:q}"
