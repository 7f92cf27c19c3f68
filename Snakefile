# neurodag workflow: `snakemake --cores all` runs every stage on the datasets in config/config.yaml.
# Add your own datasets with `--configfile my.yaml` (merged over the defaults); see README.md.

import os

from snakemake.exceptions import WorkflowError

from neurodag.config import validate
from neurodag.errors import ConfigError


configfile: "config/config.yaml"


try:
    _validated = validate(config, source="config/config.yaml merged with any --configfile")
except ConfigError as error:
    raise WorkflowError(str(error)) from None
config.clear()
config.update(_validated)


# The report opens on what ran and the validation table (written by rule summarize), or on the
# workflow's description before a run has finished.
_landing = os.path.abspath("results/validation.rst")


report: _landing if os.path.exists(_landing) else "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/ingest.smk"


# one rule file per registered stage (neurodag.stages: the config schema's stage blocks)
for _stage in registered_stages():

    include: f"workflow/rules/{_stage}.smk"


include: "workflow/rules/summary.smk"


rule all:
    input:
        [f for d in spiking_datasets() for r in recordings(d) for f in
         [spiking_output(d, r, "counts")] + [spiking_output(d, r, s) for s in aligned_names(d)]],
        analysis_files(),
        "results/validation.html",
    default_target: True
