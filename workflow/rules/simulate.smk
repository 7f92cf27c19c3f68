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
