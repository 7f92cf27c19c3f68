# Helpers shared by the rules: which datasets run, and what each reads.

import json
import shlex

from neurodag.config import enabled_datasets
from neurodag.homogenize.connectomes import connectome_inputs


def simulated_datasets(kind):
    """Datasets of this kind that `neurodag simulate` writes."""
    return [
        name
        for name in enabled_datasets(config, kind=kind)
        if config["datasets"][name]["format"] == "simulated"
    ]


def recordings(dataset):
    """Recording names of a C. elegans dataset (the ingest files' stems)."""
    from neurodag.io.celegans import recording_names

    return recording_names(config["datasets"][dataset])


def celegans_datasets():
    return enabled_datasets(config, kind="celegans")


def homogenized_datasets():
    """Datasets with a homogenize output: connectomes and C. elegans activity."""
    return enabled_datasets(config, kind="connectome") + celegans_datasets()


def ingest_files(dataset):
    return [f"results/ingest/{dataset}/{r}.nc" for r in recordings(dataset)]


def ingest_inputs(wildcards):
    """The raw files of one recording (simulated: the NWB file the simulate rule writes)."""
    from neurodag.io.celegans import recording_files

    spec = config["datasets"][wildcards.dataset]
    if spec["format"] == "simulated":
        return [f"results/simulate/{wildcards.dataset}/{wildcards.recording}.nwb"]
    return [str(p) for p in recording_files(spec, wildcards.recording)]


def homogenized_files():
    return expand("results/homogenize/{dataset}.nc", dataset=homogenized_datasets())


def homogenize_inputs(wildcards):
    """What a dataset's homogenize step reads: connectome files, or the worms' ingest files."""
    spec = config["datasets"][wildcards.dataset]
    if spec["kind"] == "celegans":
        return ingest_files(wildcards.dataset)
    return [str(p) for p in connectome_inputs(spec)]


def homogenize_ingested(wildcards, input):
    """The --ingested argument of a C. elegans dataset ('' for connectomes)."""
    if config["datasets"][wildcards.dataset]["kind"] != "celegans":
        return ""
    return "--ingested " + " ".join(shlex.quote(str(p)) for p in input)


def dataset_spec(wildcards):
    return json.dumps(config["datasets"][wildcards.dataset])


def stage_parameters(stage):
    return json.dumps(config["stages"].get(stage, {}))


def alternatives(names):
    """A wildcard constraint matching exactly these names (nothing, if there are none)."""
    return "|".join(names) if names else "(?!)"


# connectome stage (workflow/rules/connectome.smk)


def connectome_stage_inputs(wildcards):
    inputs = {"activity": f"results/homogenize/{wildcards.dataset}.nc"}
    anatomy = config["stages"]["connectome"]["anatomy_dataset"]
    if anatomy:
        inputs["anatomy"] = f"results/homogenize/{anatomy}.nc"
    if config["datasets"][wildcards.dataset]["format"] == "simulated":
        inputs["truth"] = f"results/simulate/{wildcards.dataset}/truth.nc"
    return inputs


def connectome_stage_options(wildcards, input):
    options = [f"--anatomy {shlex.quote(input.anatomy)}"] if "anatomy" in input.keys() else []
    if "truth" in input.keys():
        options.append(f"--truth {shlex.quote(input.truth)}")
    return " ".join(options)


def connectome_files():
    return expand("results/connectome/{dataset}.nc", dataset=celegans_datasets())
