# Helpers shared by the rules: which datasets run, and what each reads.

import json
import os
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


def compute_settings():
    """The config's compute section (Dask cluster, torch device) for the heavy stages' CLI."""
    return json.dumps(config["compute"])


def stage_parameters(stage):
    return json.dumps(config["stages"].get(stage, {}))


def alternatives(names):
    """A wildcard constraint matching exactly these names (nothing, if there are none)."""
    return "|".join(names) if names else "(?!)"


def geometry_datasets():
    """Datasets with a geometry output: RDM files, and Allen sessions that align its stimulus."""
    return enabled_datasets(config, kind="rdm") + allen_datasets_aligning(
        config["stages"]["geometry"]["stimulus"]
    )


def geometry_files():
    return expand("results/geometry/{dataset}.nc", dataset=geometry_datasets())


def geometry_inputs(wildcards):
    """RDM files of a kind rdm dataset, or the ingest's responses to the geometry stimulus."""
    spec = config["datasets"][wildcards.dataset]
    if spec["kind"] == "rdm":
        return [spec["path"]] + ([spec["models"]] if spec.get("models") else [])
    stimulus = config["stages"]["geometry"]["stimulus"]
    return expand(
        "results/ingest/{dataset}/{recording}/{stimulus}.nc",
        dataset=wildcards.dataset,
        recording=allen_recordings(wildcards.dataset),
        stimulus=stimulus,
    )


def geometry_responses(wildcards, input):
    """The --input argument of the geometry CLI (nothing for RDM files, read through --spec)."""
    if config["datasets"][wildcards.dataset]["kind"] == "rdm":
        return ""
    return "--input " + " ".join(f"'{path}'" for path in input)
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


def allen_datasets_aligning(stimulus):
    """Allen datasets whose ingest aligns ``stimulus``: a stage reading its trial responses runs
    only where they exist (add the stimulus to a dataset's responses to run the stage on it)."""
    return [d for d in allen_datasets() if stimulus in allen_stimuli(d)]


def simulated_allen_datasets():
    return [d for d in allen_datasets() if config["datasets"][d]["format"] == "simulated"]


def latents_datasets():
    """Allen-kind datasets that align the latents stage's stimulus (its trial responses)."""
    return allen_datasets_aligning(config["stages"]["latents"]["stimulus"])


def latents_files():
    return expand("results/latents/{dataset}.nc", dataset=latents_datasets())


def latents_input(wildcards):
    """results/ingest/{dataset}/{recording}/{stimulus}.nc for stages.latents. The recording is
    stages.latents.recording, else the dataset's first recording."""
    settings = config["stages"]["latents"]
    recording = settings["recording"]
    if recording is None:
        recording = allen_recordings(wildcards.dataset)[0]
    return f"results/ingest/{wildcards.dataset}/{recording}/{settings['stimulus']}.nc"


def mds_datasets():
    """Allen-kind datasets (simulated or recorded) that align the mds stage's image stimulus."""
    return allen_datasets_aligning(config["stages"]["mds"]["stimulus"])


def mds_files():
    return expand("results/mds/{dataset}.nc", dataset=mds_datasets())


def mds_inputs(wildcards):
    """The ingest image-response file of every recording of the dataset."""
    stimulus = config["stages"]["mds"]["stimulus"]
    return [
        f"results/ingest/{wildcards.dataset}/{recording}/{stimulus}.nc"
        for recording in allen_recordings(wildcards.dataset)
    ]


def simulation_truth(wildcards):
    """A simulated dataset's truth.nc (for the stages' validation); nothing for recorded data."""
    if config["datasets"][wildcards.dataset]["format"] == "simulated":
        return f"results/simulate/{wildcards.dataset}/truth.nc"
    return []
# connectome stage (workflow/rules/connectome.smk)


def connectome_stage_inputs(wildcards):
    inputs = {"activity": f"results/homogenize/{wildcards.dataset}.nc"}
    anatomy = config["stages"]["connectome"]["anatomy_dataset"]
    if anatomy and anatomy in enabled_datasets(config, kind="connectome"):
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


def bicluster_datasets():
    """Allen-kind datasets: the bicluster stage reads their binned counts."""
    return enabled_datasets(config, kind="allen")


def bicluster_files():
    return expand("results/bicluster/{dataset}.nc", dataset=bicluster_datasets())


def bicluster_input(wildcards):
    recording = config["stages"]["bicluster"]["recording"]
    if recording is None:
        recording = allen_recordings(wildcards.dataset)[0]
    return f"results/ingest/{wildcards.dataset}/{recording}/counts.nc"


def analysis_files():
    """Outputs of the analysis stages for every dataset they run on."""
    return (
        geometry_files() + latents_files() + mds_files() + connectome_files() + bicluster_files()
    )
