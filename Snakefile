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
include: "workflow/rules/homogenize.smk"
include: "workflow/rules/bicluster.smk"


rule all:
    input:
        homogenized_files(),
        bicluster_files(),
    default_target: True
