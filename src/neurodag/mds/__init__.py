"""Most-discriminative-stimuli clustering of functional cell types (Burg et al., "Most
discriminative stimuli for functional cell type clustering", ICLR 2024).

The stage contract (docs/stages.md): ``run`` / ``validate`` / ``figures`` in :mod:`.stage`; the
predictive model in :mod:`.model`, the clustering in :mod:`.clustering`.
"""

from neurodag.stages import lazy_verbs

HELP = "most-discriminative-stimuli clustering of functional cell types (Burg et al.)"
INPUTS = {"responses": "ingest image responses (responses(trial, neuron, time), frame, image)"}
FIGURES = ("mds",)

__getattr__ = lazy_verbs(__name__ + ".stage")
