# Latents (Song et al.): LangevinFlow latent dynamics of one recording's trial responses to
# stages.latents.stimulus (stages.latents.recording, default the first). Checkpoints sit beside the
# output (not declared, so Snakemake keeps them when a job is killed) and an interrupted training
# resumes from them on the next run.


def latents_datasets():
    return allen_datasets_aligning(config["stages"]["latents"]["stimulus"])


def latents_inputs(wildcards):
    settings = config["stages"]["latents"]
    return {
        "responses": allen_output(wildcards.dataset, settings["recording"], settings["stimulus"]),
        "truth": truth_file(wildcards.dataset),
    }


STAGE_DATASETS["latents"] = latents_datasets


rule latents:
    input:
        unpack(latents_inputs),
    output:
        nc="results/latents/{dataset}.nc",
        figures=stage_figures("latents"),
    log:
        "results/logs/latents/{dataset}.log",
    benchmark:
        "results/benchmarks/latents/{dataset}.tsv"
    params:
        flags=stage_flags("latents"),
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
        "neurodag latents {params.flags} --output {output.nc:q} 2> {log:q}"
