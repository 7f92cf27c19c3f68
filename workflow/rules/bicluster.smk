# Bicluster: Bayesian bi-clustering of binned spike counts (Wei et al.), MCMC with parallel chains.
# Reads the session-long counts written by ingest for one recording of an allen dataset
# (stages.bicluster.recording, default the first) and writes results/bicluster/{dataset}.nc with
# figures beside it.


rule bicluster:
    input:
        counts=bicluster_input,
        truth=simulation_truth,
    output:
        nc="results/bicluster/{dataset}.nc",
        coclustering=report(
            "results/bicluster/{dataset}.coclustering.png",
            caption="../report/bicluster.rst",
            category="bicluster",
            subcategory="{dataset}",
            labels={"stage": "bicluster", "dataset": "{dataset}", "figure": "co-clustering"},
        ),
        states=report(
            "results/bicluster/{dataset}.states.png",
            caption="../report/bicluster.rst",
            category="bicluster",
            subcategory="{dataset}",
            labels={"stage": "bicluster", "dataset": "{dataset}", "figure": "states"},
        ),
    log:
        "results/logs/bicluster/{dataset}.log",
    benchmark:
        "results/benchmarks/bicluster/{dataset}.tsv"
    params:
        stage=stage_parameters("bicluster"),
        compute=json.dumps(config["compute"]),
        truth=lambda wildcards, input: f"--truth '{input.truth}'" if input.truth else "",
    wildcard_constraints:
        dataset=alternatives(bicluster_datasets()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "neurodag bicluster --input {input.counts:q} {params.truth} --params {params.stage:q} "
        "--compute {params.compute:q} --threads {threads} --output {output.nc:q} 2> {log:q}"
