# Ingest: each recording into the data model through the format registry (`neurodag ingest`).
# C. elegans: results/ingest/{dataset}/{recording}.nc. Spiking sessions (kind allen, and kind
# spikes: any lab's NWB file): one job per recording reads the NWB once and writes counts.nc and one
# {name}.nc per aligned stimulus or trial alignment (+ figures) into
# results/ingest/{dataset}/{recording}/; one rule per dataset, so the trial files are declared.


def ingest_flags(dataset):
    def build(wildcards, input):
        return flags(
            spec=dataset_entry(dataset),
            params=config["stages"]["ingest"],
            recording=wildcards.recording,
            input=list(input.raw),
        )

    return build


for _name in datasets("celegans"):

    rule:
        name:
            f"ingest_{_name}"
        input:
            raw=lambda wildcards, dataset=_name: raw_files(dataset, wildcards.recording),
        output:
            nc=f"results/ingest/{_name}/{{recording}}.nc",
        log:
            f"results/logs/ingest/{_name}/{{recording}}.log",
        benchmark:
            f"results/benchmarks/ingest/{_name}/{{recording}}.tsv"
        params:
            flags=ingest_flags(_name),
        wildcard_constraints:
            recording=alternatives(recordings(_name)),
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        shell:
            "neurodag ingest {params.flags} --output {output.nc:q} 2> {log:q}"


for _name in spiking_datasets():

    rule:
        name:
            f"ingest_{_name}"
        input:
            raw=lambda wildcards, dataset=_name: raw_files(dataset, wildcards.recording),
            images=image_inputs(_name),
        output:
            nc=f"results/ingest/{_name}/{{recording}}/counts.nc",
            figure=f"results/ingest/{_name}/{{recording}}/counts.png",
            responses=[f"results/ingest/{_name}/{{recording}}/{s}.nc" for s in aligned_names(_name)],
            figures=[f"results/ingest/{_name}/{{recording}}/{s}.png" for s in aligned_names(_name)],
        log:
            f"results/logs/ingest/{_name}/{{recording}}.log",
        benchmark:
            f"results/benchmarks/ingest/{_name}/{{recording}}.tsv"
        params:
            flags=ingest_flags(_name),
            folder=lambda wildcards, output: os.path.dirname(output.nc),
        wildcard_constraints:
            recording=alternatives(recordings(_name)),
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=30,
        shell:
            "neurodag ingest {params.flags} --output {params.folder:q} 2> {log:q}"
