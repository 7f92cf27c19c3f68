# Which datasets run and what each recording reads; one helper that builds CLI flags. Each stage's
# own helpers live in its .smk file, which also says which datasets the stage runs on.

import json
import os
import shlex

from neurodag.config import enabled_datasets
from neurodag.io import formats
from neurodag.stages import stages as registered_stages


def datasets(kind=None):
    return enabled_datasets(config, kind=kind)


def dataset_entry(dataset):
    return config["datasets"][dataset]


def is_simulated(dataset):
    return dataset_entry(dataset)["format"] == "simulated"


def simulated_datasets(kind):
    """Datasets of this kind that `neurodag simulate` writes."""
    return [d for d in datasets(kind) if is_simulated(d)]


def recordings(dataset):
    """Recording names of a dataset (its ingest outputs' stems), from the format registry."""
    return formats.recordings(dataset_entry(dataset))


def raw_files(dataset, recording=None):
    """The raw files one recording reads (simulated: what the simulate rule writes)."""
    if is_simulated(dataset):
        return [f"results/simulate/{dataset}/{recording}.nwb"]
    return [str(p) for p in formats.recording_files(dataset_entry(dataset), recording)]


def image_inputs(dataset):
    """The stimulus images an allen dataset's ingest reads (its `images:` option), as its inputs
    so that a change reruns it: a folder's image files or the stack file; for a simulated dataset
    the image folders its simulate rule writes."""
    if dataset_entry(dataset)["kind"] != "allen":
        return []
    if is_simulated(dataset):
        return simulated_image_folders(dataset)
    from neurodag.io.stimulus_images import image_files, images_option

    images = images_option(dataset_entry(dataset))
    return [str(f) for s, p in images.items() for f in image_files(p, f"images.{s}")]


def simulated_image_folders(dataset):
    """A simulated allen dataset's `images:` folders: the simulator writes each stimulus's images
    to results/simulate/{dataset}/images/{stimulus}, so `images:` must name those."""
    from neurodag.errors import ConfigError
    from neurodag.io.stimulus_images import images_option

    folders = []
    if dataset_entry(dataset)["kind"] != "allen":
        return folders
    for stimulus, path in images_option(dataset_entry(dataset)).items():
        folder = f"results/simulate/{dataset}/images/{stimulus}"
        if os.path.normpath(path) != folder:
            raise ConfigError(
                f"datasets.{dataset}.images.{stimulus}: the simulator writes this dataset's "
                f"images to {folder}; got {path}"
            )
        folders.append(folder)
    return folders


def truth_file(dataset):
    """A simulated dataset's truth.nc (the stages validate against it); none for recorded data."""
    return [f"results/simulate/{dataset}/truth.nc"] if is_simulated(dataset) else []


SPIKING_KINDS = ("allen", "spikes")  # kinds whose ingest writes counts.nc and trial responses


def spiking_datasets():
    """Datasets whose ingest writes a folder per recording: counts.nc and {name}.nc."""
    return [d for kind in SPIKING_KINDS for d in datasets(kind)]


def aligned_names(dataset):
    """The trial responses a spiking dataset's ingest writes: an allen dataset's stimuli (its own
    responses, else the ingest stage's), a spikes dataset's alignments (its own, else the stage's)."""
    if dataset_entry(dataset)["kind"] == "spikes":
        from neurodag.io.nwb_spikes import alignments_for

        return sorted(alignments_for(dataset_entry(dataset), config["stages"]["ingest"]["spikes"]))
    from neurodag.ingest_allen import responses_for

    return sorted(responses_for(dataset_entry(dataset), config["stages"]["ingest"]["allen"]))


def datasets_aligning(name):
    """Spiking datasets whose ingest writes the trial responses ``name``: a stage reading them
    runs only where they exist (add the stimulus or alignment to run the stage on a dataset)."""
    return [d for d in spiking_datasets() if name in aligned_names(d)]


def spiking_output(dataset, recording, name):
    """A spiking ingest output: counts, or trial responses (recording None: the first one)."""
    recording = recording or recordings(dataset)[0]
    return f"results/ingest/{dataset}/{recording}/{name}.nc"


def alternatives(names):
    """A wildcard constraint matching exactly these names (nothing, if there are none)."""
    return "|".join(map(str, names)) if names else "(?!)"


def flags(**options):
    """Command-line flags, quoted: ``name=value`` -> ``--name value``; a list gives its items
    after one flag; True gives the bare flag; None, False and empty lists give nothing."""
    parts = []
    for name, value in options.items():
        flag = f"--{name.replace('_', '-')}"
        if value is None or value is False or value == []:
            continue
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)) or type(value).__name__ == "Namedlist":
            parts.append(" ".join([flag, *(shlex.quote(str(v)) for v in value)]))
        elif isinstance(value, dict):
            parts.append(f"{flag} {shlex.quote(json.dumps(value))}")
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def as_list(files):
    """A named input's files (Snakemake gives one file as a plain string)."""
    return [files] if isinstance(files, str) else list(files)


# Each stage's .smk file adds {stage: function listing the datasets it runs on}.
STAGE_DATASETS = {}


def stage_flags(stage):
    """The `neurodag <stage>` flags of a rule: its named inputs (the stage's first input role as
    --input, the others by name, truth as --truth), the dataset's entry, the stage's parameters,
    the compute section and the job's size."""
    first_role = registered_stages()[stage].input_roles[0]

    def build(wildcards, input, threads, resources):
        named = {key: as_list(getattr(input, key)) for key in input.keys()}
        return flags(
            input=named.pop(first_role, []),
            **named,
            spec=dataset_entry(wildcards.dataset),
            params=config["stages"][stage],
            compute=config["compute"],
            threads=threads,
            memory_mb=resources.mem_mb,
        )

    return build


def stage_figures(stage):
    """The figures a stage always writes, as report outputs beside its NetCDF file."""
    figures = []
    for name in registered_stages()[stage].figure_names:
        labels = {"stage": stage, "dataset": "{dataset}", "figure": name.replace("_", " ")}
        figures.append(report(
            f"results/{stage}/{{dataset}}.{name}.png",
            caption=f"../report/{stage}.rst",
            category=stage,
            subcategory="{dataset}",
            labels=labels,
        ))
    return figures


def analysis_files():
    """Every registered stage's output for every dataset it runs on."""
    return [
        f"results/{stage}/{dataset}.nc"
        for stage in registered_stages()
        for dataset in STAGE_DATASETS[stage]()
    ]
