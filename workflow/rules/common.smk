# Helpers shared by the rules: which datasets run, and what each reads.

import json

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


def homogenized_datasets():
    """Datasets with a homogenize output (connectomes for now)."""
    return enabled_datasets(config, kind="connectome")


def homogenized_files():
    return expand("results/homogenize/{dataset}.nc", dataset=homogenized_datasets())


def homogenize_inputs(wildcards):
    """The raw files a dataset's homogenize step reads."""
    return [str(p) for p in connectome_inputs(config["datasets"][wildcards.dataset])]


def dataset_spec(wildcards):
    return json.dumps(config["datasets"][wildcards.dataset])


def stage_parameters(stage):
    return json.dumps(config["stages"].get(stage, {}))


def alternatives(names):
    """A wildcard constraint matching exactly these names (nothing, if there are none)."""
    return "|".join(names) if names else "(?!)"
