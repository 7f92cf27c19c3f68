"""Homogenization (Simeon et al., "Homogenized C. elegans Neural Activity and Connectivity
Data"): connectomes and C. elegans activity onto the canonical 300-neuron axis.

The stage contract (docs/stages.md): ``run`` / ``validate`` / ``figures`` in :mod:`.stage`;
connectomes and their consensus in :mod:`.connectomes`, calcium traces in :mod:`.calcium`.
"""

from neurodag.stages import lazy_verbs

HELP = "homogenize a dataset onto the canonical neuron axis (connectomes: + consensus)"
INPUTS = {
    "sources": "C. elegans: the dataset's ingest files; connectomes: their files (provenance)"
}
FIGURES = ("summary",)

__getattr__ = lazy_verbs(__name__ + ".stage")
