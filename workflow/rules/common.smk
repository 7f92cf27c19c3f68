# Helpers shared by the rules: which datasets run, and what each reads.

import json

from neurodag.config import enabled_datasets
from neurodag.homogenize.connectomes import connectome_inputs


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


# Bicluster (issue 6).
def bicluster_datasets():
    # allen datasets and their recordings come from the ingest rules (common.smk, issue 4).
    if "allen_recordings" not in globals():
        return []
    return enabled_datasets(config, kind="allen")


def bicluster_files():
    return expand("results/bicluster/{dataset}.nc", dataset=bicluster_datasets())


def bicluster_input(wildcards):
    recording = config["stages"]["bicluster"]["recording"]
    if recording is None:
        recording = allen_recordings(wildcards.dataset)[0]
    return f"results/ingest/{wildcards.dataset}/{recording}/counts.nc"
