# Summary: every stage's ground-truth recovery (validation_*) and headline figures in one table.


rule summarize:
    input:
        analysis_files(),
    output:
        report(
            "results/validation.html",
            caption="../report/validation.rst",
            category="validation",
            labels={"stage": "all", "table": "ground-truth recovery"},
        ),
    log:
        "results/logs/summarize.log",
    benchmark:
        "results/benchmarks/summarize.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "neurodag summarize {input:q} --output {output:q} 2> {log:q}"
