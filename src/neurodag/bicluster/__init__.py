"""Bayesian bi-clustering of spike counts with latent structures (Wei et al., "Bayesian
Bi-clustering of Neural Spiking Activity with Latent Structures").

The stage contract (docs/stages.md): ``run`` / ``validate`` / ``figures`` live in :mod:`.stage`;
the model in :mod:`.sampler`, chains and their pooling in :mod:`.fit`, posterior summaries in
:mod:`.summary`. This package is the documented example to copy when adding a stage.
"""

from neurodag.stages import lazy_verbs

HELP = "Bayesian bi-clustering of binned spike counts (Wei et al.), MCMC"
INPUTS = {"counts": "ingest counts.nc of one recording: counts(neuron, time) with epoch(time)"}
FIGURES = ("coclustering", "states")

__getattr__ = lazy_verbs(__name__ + ".stage")
