# Helpers shared by the rules: which datasets run, and what each reads.

import json
import os

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


# Allen Neuropixels sessions (kind allen): simulated ones are written by rule simulate_allen as
# results/simulate/{dataset}/session.nwb; real ones are the files named by the dataset's path.
SIMULATED_ALLEN_RECORDING = "session"


def allen_datasets():
    return enabled_datasets(config, kind="allen")


def allen_recordings(dataset):
    """Recording names (file stems) of an allen dataset."""
    spec = config["datasets"][dataset]
    if spec["format"] == "simulated":
        return [SIMULATED_ALLEN_RECORDING]
    from neurodag.io.paths import resolve_files

    return [p.stem for p in resolve_files(spec["path"], (".nwb",))]


def allen_session_file(dataset, recording):
    """The NWB file of a recording of an allen dataset."""
    spec = config["datasets"][dataset]
    if spec["format"] == "simulated":
        return f"results/simulate/{dataset}/{recording}.nwb"
    from neurodag.io.paths import resolve_files

    files = {p.stem: str(p) for p in resolve_files(spec["path"], (".nwb",))}
    return files[recording]


def allen_session_input(dataset):
    """Input function of a dataset's ingest rule (the rules are per dataset)."""

    def session_file(wildcards):
        return allen_session_file(dataset, wildcards.recording)

    return session_file


def allen_stimuli(dataset):
    """The stimuli aligned for an allen dataset (its own responses, else the stage's)."""
    from neurodag.ingest_allen import responses_for

    return sorted(
        responses_for(config["datasets"][dataset], config["stages"]["ingest"]["allen"])
    )


def allen_ingest_files():
    files = []
    for dataset in allen_datasets():
        for recording in allen_recordings(dataset):
            folder = f"results/ingest/{dataset}/{recording}"
            files += [f"{folder}/counts.nc"]
            files += [f"{folder}/{stimulus}.nc" for stimulus in allen_stimuli(dataset)]
    return files


def simulated_allen_datasets():
    return [d for d in allen_datasets() if config["datasets"][d]["format"] == "simulated"]
