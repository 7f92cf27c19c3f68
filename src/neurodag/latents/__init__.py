"""LangevinFlow latent dynamics of trial-aligned spike counts (Song et al., "Langevin Flows for
Modeling Neural Latent Dynamics"), scored with the Neural Latents Benchmark's metrics.

The stage contract (docs/stages.md): ``run`` / ``validate`` / ``figures`` in :mod:`.stage`; the
models in :mod:`.model`, training in :mod:`.train`, metrics in :mod:`.metrics`.
"""

from neurodag.stages import lazy_verbs

HELP = "LangevinFlow latent dynamics of trial-aligned spike counts (Song et al.)"
INPUTS = {"responses": "ingest trial responses: responses(trial, neuron, time)"}
FIGURES = ("rates",)

__getattr__ = lazy_verbs(__name__ + ".stage")
