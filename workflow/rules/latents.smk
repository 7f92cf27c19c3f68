# Latents: LangevinFlow latent dynamics of trial-aligned spike counts (Song et al.).
# Checkpoints sit beside the output (not declared, so Snakemake keeps them when a job is killed)
# and an interrupted training resumes from them on the next run.


rule latents:
    input:
        responses=latents_input,
        truth=simulation_truth,
    output:
        data="results/latents/{dataset}.nc",
        figure=report(
            "results/latents/{dataset}.rates.png",
            caption="../report/latents.rst",
            category="latents",
            subcategory="{dataset}",
            labels={"stage": "latents", "dataset": "{dataset}", "figure": "rates"},
        ),
    log:
        "results/logs/latents/{dataset}.log",
    benchmark:
        "results/benchmarks/latents/{dataset}.tsv"
    params:
        stage=stage_parameters("latents"),
        device=config["compute"]["device"],
        checkpoint="results/latents/{dataset}.checkpoint.pt",
        truth=lambda wildcards, input: f"--truth '{input.truth}'" if input.truth else "",
    wildcard_constraints:
        dataset=alternatives(latents_datasets()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=0,
    shell:
        "neurodag latents --input {input.responses:q} {params.truth} --params {params.stage:q} --device {params.device} "
        "--threads {threads} --checkpoint {params.checkpoint:q} --output {output.data:q} 2> {log:q}"
