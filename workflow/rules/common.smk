# Helpers shared by the rules: which datasets run, and what each reads.

import json
from pathlib import Path

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


def mds_datasets():
    """Allen-kind datasets (simulated or recorded) with image trial responses."""
    return enabled_datasets(config, kind="allen")


def mds_files():
    return expand("results/mds/{dataset}.nc", dataset=mds_datasets())


def mds_inputs(wildcards):
    """The ingest image-response file of every recording of the dataset."""
    stimulus = config["stages"]["mds"]["stimulus"]
    return [
        f"results/ingest/{wildcards.dataset}/{recording}/{stimulus}.nc"
        for recording in _mds_recordings(wildcards.dataset)
    ]


def _mds_recordings(dataset):
    """Recordings of a dataset: the Allen ingest's helper when present (issue 4), else the
    recordings whose ingest folders exist."""
    if "dataset_recordings" in globals():
        return globals()["dataset_recordings"](dataset)
    return sorted(p.parent.name for p in Path(f"results/ingest/{dataset}").glob("*/*.nc"))


def mds_truth(wildcards):
    """The simulated session's truth file, for validation (nothing for recorded data)."""
    if config["datasets"][wildcards.dataset]["format"] == "simulated":
        return f"results/simulate/{wildcards.dataset}/truth.nc"
    return []
