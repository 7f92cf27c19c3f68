# Simulate: datasets with format `simulated` are written by `neurodag simulate <kind>` in their real
# format (C. elegans: one NWB per worm; Allen: session.nwb, its stimulus images outside it in
# images/{stimulus}/ as for a real session; spikes: session.nwb in the generic layout) plus truth.nc. One rule per dataset, so that every file it writes is a declared output
# that ingest and the stages can depend on.

for _name in [d for kind in ("celegans", "allen", "spikes") for d in simulated_datasets(kind)]:

    rule:
        name:
            f"simulate_{_name}"
        output:
            truth=f"results/simulate/{_name}/truth.nc",
            recordings=[f"results/simulate/{_name}/{r}.nwb" for r in recordings(_name)],
            images=[directory(folder) for folder in simulated_image_folders(_name)],
        log:
            f"results/logs/simulate/{_name}.log",
        benchmark:
            f"results/benchmarks/simulate/{_name}.tsv"
        params:
            flags=flags(spec=dataset_entry(_name)),
            kind=dataset_entry(_name)["kind"],
            folder=lambda wildcards, output: os.path.dirname(output.truth),
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        shell:
            "neurodag simulate {params.kind} {params.flags} --output {params.folder:q} 2> {log:q}"
