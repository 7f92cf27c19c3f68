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


def latents_datasets():
    """Allen-kind datasets: the latents stage models their trial responses."""
    return enabled_datasets(config, kind="allen")


def latents_files():
    return expand("results/latents/{dataset}.nc", dataset=latents_datasets())


def latents_input(wildcards):
    """results/ingest/{dataset}/{recording}/{stimulus}.nc for stages.latents. The recording is
    stages.latents.recording, else the dataset's first recording as the Allen ingest lists them
    (allen_recordings, defined with the ingest rules)."""
    settings = config["stages"]["latents"]
    recording = settings["recording"]
    if recording is None:
        lister = globals().get("allen_recordings")
        if lister is None:
            raise WorkflowError(
                "stages.latents.recording: set it (no Allen ingest rules list the recordings)"
            )
        recording = lister(wildcards.dataset)[0]
    return f"results/ingest/{wildcards.dataset}/{recording}/{settings['stimulus']}.nc"
