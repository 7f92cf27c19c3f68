# Latents (Song et al.): LangevinFlow latent dynamics of one recording's trial responses to
# stages.latents.stimulus (stages.latents.recording, default the first). Checkpoints sit beside the
# output (not declared, so Snakemake keeps them when a job is killed) and an interrupted training
# resumes from them on the next run.

STAGE_DATASETS["latents"] = lambda: datasets_aligning(config["stages"]["latents"]["stimulus"])


rule latents:
    input:
        responses=lambda w: spiking_output(
            w.dataset, config["stages"]["latents"]["recording"], config["stages"]["latents"]["stimulus"]
        ),
        truth=lambda w: truth_file(w.dataset),
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
        dataset=alternatives(STAGE_DATASETS["latents"]()),
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=0,
    shell:
        "neurodag latents {params.flags} --output {output.nc:q} 2> {log:q}"
