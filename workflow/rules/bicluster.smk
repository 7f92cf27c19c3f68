# Bicluster: Bayesian bi-clustering of binned spike counts (Wei et al.), MCMC with parallel chains.
# Reads the session-long counts written by ingest for one recording of an allen dataset
# (stages.bicluster.recording, default the first) and writes results/bicluster/{dataset}.nc with
# figures beside it.


rule bicluster:
    input:
        bicluster_input,
    output:
        nc="results/bicluster/{dataset}.nc",
        coclustering="results/bicluster/{dataset}.coclustering.png",
        states="results/bicluster/{dataset}.states.png",
    log:
        "results/logs/bicluster/{dataset}.log",
    benchmark:
        "results/benchmarks/bicluster/{dataset}.tsv"
    params:
        stage=stage_parameters("bicluster"),
        compute=json.dumps(config["compute"]),
    wildcard_constraints:
        dataset=alternatives(bicluster_datasets()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "neurodag bicluster --input {input:q} --params {params.stage:q} "
        "--compute {params.compute:q} --threads {threads} --output {output.nc:q} 2> {log:q}"
