"""Dynamic functional connectome (Dyballa et al., "Learning dynamic representations of the
functional connectome in neurobiological networks", ICLR 2024).

Three steps, as in the paper:

1. :mod:`.affinity` — sliding-window pairwise affinities per worm over the pairs it recorded,
   ``affinity(entry, window)`` with ``entry_pair``/``entry_worm`` (one entry per (pair, worm)
   recorded together; computed in parallel with Dask over worms);
2. :mod:`.ntf` — non-negative CP of that ``(pair, window, worm)`` tensor (masked HALS over the
   observed entries only), rank chosen from reconstruction error, replicability across restarts
   and worm spread (the fits on the Dask workers): ``pair_factor(component, pair)``,
   ``time_factor(component, window)``, ``worm_factor(component, worm)``;
3. :mod:`.sbm` — each component's pair factor is a weighted neuron graph; its communities come from
   a weighted stochastic block model (variational EM, block count by ICL) and, as a baseline, from
   Louvain modularity: ``community(component, neuron)``, ``louvain_community(component, neuron)``;

plus :mod:`.enrichment` (anatomical connections within versus between communities, permutation
p-value) and :mod:`.validate` (agreement with a simulation's planted groups and epochs). The stage
contract (docs/stages.md): ``run`` / ``validate`` / ``figures`` in :mod:`.stage`.
"""

from neurodag.stages import lazy_verbs

HELP = "dynamic functional connectome of homogenized worms (Dyballa et al.)"
INPUTS = {
    "activity": "homogenized worms: results/homogenize/<dataset>.nc",
    "anatomy": "homogenized connectome (structure-versus-function test; optional)",
}
FIGURES = ("time_factors", "communities", "rank")

__getattr__ = lazy_verbs(__name__ + ".stage")
