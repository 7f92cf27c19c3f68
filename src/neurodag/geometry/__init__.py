"""Representational geometry and topological RSA (Lin & Kriegeskorte, "The Topology and Geometry
of Neural Representations", PNAS 2024).

The stage contract (docs/stages.md): ``run`` / ``validate`` / ``figures`` in :mod:`.stage`; RDMs in
:mod:`.rdm`, geo-topological transforms in :mod:`.transforms`, comparison and identification in
:mod:`.compare`, population measures in :mod:`.population`.
"""

from neurodag.stages import lazy_verbs

HELP = "RDMs, topological RSA and population geometry (trial responses or RDM files)"
INPUTS = {
    "responses": "ingest trial responses, one per recording (kind rdm: the dataset's RDM files)"
}
FIGURES = ("rdm", "rdm_gt")

__getattr__ = lazy_verbs(__name__ + ".stage")
