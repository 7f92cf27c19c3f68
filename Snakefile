# neurodag workflow: `snakemake --cores all` runs every stage on the datasets in config/config.yaml.
# Add your own datasets with `--configfile my.yaml` (merged over the defaults); see README.md.

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


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/homogenize.smk"
include: "workflow/rules/geometry.smk"
include: "workflow/rules/latents.smk"
include: "workflow/rules/mds.smk"
include: "workflow/rules/connectome.smk"
include: "workflow/rules/bicluster.smk"
include: "workflow/rules/summary.smk"


rule all:
    input:
        homogenized_files(),
        allen_ingest_files(),
        analysis_files(),
        "results/validation.html",
    default_target: True
