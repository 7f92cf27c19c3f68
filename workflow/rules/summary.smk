# Summary: every stage's ground-truth recovery (validation_*) and headline figures in one table,
# and the report's landing text (results/validation.rst: what ran, the table, headline figures).


rule summarize:
    input:
        analysis_files(),
    output:
        html=report(
            "results/validation.html",
            caption="../report/validation.rst",
            category="validation",
            labels={"stage": "all", "table": "ground-truth recovery"},
        ),
        tsv="results/validation.tsv",
        landing="results/validation.rst",
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
        "neurodag summarize {input:q} --output {output.html:q} 2> {log:q}"
