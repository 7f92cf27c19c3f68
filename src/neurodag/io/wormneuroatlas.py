"""Reader for the connectomes shipped by the ``wormneuroatlas`` PyPI package.

Config format ``wormneuroatlas``.

Sources (the package's data folder; citations in its SEE_README_FOR_CITATIONS):

- ``white_1986_whole``: White et al. 1986, "The structure of the nervous system of the nematode
  C. elegans", whole-animal reconstruction (edge list).
- ``witvliet_2020_7``, ``witvliet_2020_8``: Witvliet et al. 2021, "Connectomes across development
  reveal principles of brain maturation", adult datasets 7 and 8 (edge lists).
- ``wormneuroatlas_default``: the package's compiled anatomical connectome
  (``aconnectome_default.h5``): chemical and gap-junction count matrices summed over White 1986
  and Witvliet 7/8; it repeats the reconstructions, so the consensus leaves it out by default.
- ``randi_2023``: Randi et al. 2023, "Neural signal propagation atlas of Caenorhabditis elegans"
  (``funatlas.h5``, wild type): mean dF/F response of each neuron to optogenetic stimulation of
  another, with q-values and trial counts.

The package's matrices are indexed ``[post, pre]`` ("from j to i"); they are transposed here to the
``[pre, post]`` convention of neurodag. The package names the AWC pair AWCOFF/AWCON, mapped back to
AWCL/AWCR by the package's own documented convention.

The package is not imported (its import pulls in plotting and multiprocessing); its data files are
located and read directly.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from neurodag.errors import InputError
from neurodag.io.connectome_tables import canonicalise_edges, edges_to_matrices
from neurodag.neurons import WORMNEUROATLAS_ALIASES, canonical_neurons, map_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedSource:
    file: str
    kind: str  # "anatomical", "compiled" (derived from other sources) or "functional"
    reference: str


PACKAGED_SOURCES = {
    "white_1986_whole": PackagedSource(
        "aconnectome_white_1986_whole.csv",
        "anatomical",
        "White et al. 1986, Phil. Trans. R. Soc. Lond. B 314:1-340 (whole animal)",
    ),
    "witvliet_2020_7": PackagedSource(
        "aconnectome_witvliet_2020_7.csv",
        "anatomical",
        "Witvliet et al. 2021, Nature 596:257-261 (adult, dataset 7)",
    ),
    "witvliet_2020_8": PackagedSource(
        "aconnectome_witvliet_2020_8.csv",
        "anatomical",
        "Witvliet et al. 2021, Nature 596:257-261 (adult, dataset 8)",
    ),
    "wormneuroatlas_default": PackagedSource(
        "aconnectome_default.h5",
        "compiled",
        "wormneuroatlas 0.0.7.3 default anatomical connectome "
        "(White 1986 A+L4, Witvliet 7+8, summed)",
    ),
    "randi_2023": PackagedSource(
        "funatlas.h5",
        "functional",
        "Randi et al. 2023, Nature 623:406-414, signal propagation atlas (wild type)",
    ),
}

_NEURON_IDS_FILE = "neuron_ids.txt"


def data_dir() -> Path:
    """The wormneuroatlas package's data folder, found without importing the package."""
    spec = importlib.util.find_spec("wormneuroatlas")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(None, "format", "the wormneuroatlas package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def source_path(name: str, folder: Path | None = None) -> Path:
    return (folder or data_dir()) / PACKAGED_SOURCES[name].file


def read_nemanode_tsv(path: Path) -> dict[str, np.ndarray]:
    """Edge list with columns pre, post, type (chemical/electrical), synapses; tab-separated."""
    try:
        table = pd.read_csv(path, sep="\t", dtype={"pre": str, "post": str, "type": str})
    except OSError as exc:
        raise InputError(path, None, f"cannot read ({exc})") from exc
    missing = {"pre", "post", "type", "synapses"} - set(table.columns)
    if missing:
        raise InputError(path, ", ".join(sorted(missing)), "missing column(s)")
    edges = table.rename(columns={"type": "synapse", "synapses": "weight"})[
        ["pre", "post", "synapse", "weight"]
    ]
    edges = canonicalise_edges(edges[edges["weight"] > 0], path=path)
    return edges_to_matrices(edges)


def _atlas_order(ids: list[str], path: Path) -> np.ndarray:
    """Index array that reorders the atlas's neuron axis into canonical order."""
    mapping, report = map_names(ids, WORMNEUROATLAS_ALIASES)
    if report.unknown or report.non_neuronal or len(set(mapping.values())) != len(ids):
        raise InputError(path, "neuron_ids", f"unexpected neuron list: {report.summary()}")
    position = {mapping[name]: i for i, name in enumerate(ids)}
    return np.array([position[n] for n in canonical_neurons()])


def _atlas_ids(folder: Path) -> list[str]:
    lines = (folder / _NEURON_IDS_FILE).read_text().splitlines()
    return [line.split("\t")[1].strip() for line in lines if line.strip()]


def _reorder(matrix_post_pre: np.ndarray, order: np.ndarray) -> np.ndarray:
    """[post, pre] in atlas order -> [pre, post] in canonical order."""
    return matrix_post_pre[np.ix_(order, order)].T


def read_default_h5(path: Path) -> dict[str, np.ndarray]:
    """The compiled default connectome. Unlike the package's other files, its matrices are in
    alphabetical order of the package's names (AWCOFF before AWCON), not in neuron_ids.txt order:
    only that order agrees with the package's own edge lists (checked in the tests)."""
    order = _atlas_order(sorted(_atlas_ids(path.parent)), path)
    with _open_h5(path) as h5:
        chem, gap = h5["chem"][:], h5["gap"][:]
    gap = _reorder(gap, order)
    return {"chemical": _reorder(chem, order), "electrical": np.maximum(gap, gap.T)}


def read_funatlas_h5(path: Path, strain: str = "wt") -> dict[str, np.ndarray]:
    """Signal propagation atlas: ``dff``, ``q`` and ``trials`` matrices, [pre, post] canonical.

    ``dff[pre, post]`` is the mean dF/F of ``post`` after stimulating ``pre`` (NaN: never measured).
    """
    with _open_h5(path) as h5:
        ids = [raw.decode() for raw in h5["neuron_ids"][:]]
        if strain not in h5:
            raise InputError(
                path, strain, f"no such strain; has {[k for k in h5 if k != 'neuron_ids']}"
            )
        group = h5[strain]
        dff, q, trials = group["dFF"][:], group["q"][:], group["occ1"][:]
    order = _atlas_order(ids, path)
    return {
        "dff": _reorder(dff, order),
        "q": _reorder(q, order),
        "trials": _reorder(trials, order),
    }


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except FileNotFoundError as exc:
        raise InputError(path, None, "file not found") from exc
    except OSError as exc:
        raise InputError(path, None, f"not a readable HDF5 file ({exc})") from exc


def read_packaged_source(name: str, folder: Path | None = None, strain: str = "wt"):
    """Read one packaged source by name; see PACKAGED_SOURCES."""
    if name not in PACKAGED_SOURCES:
        raise InputError(
            None,
            "sources",
            f"unknown wormneuroatlas source {name!r}; known: {list(PACKAGED_SOURCES)}",
        )
    path = source_path(name, folder)
    if name == "wormneuroatlas_default":
        return read_default_h5(path)
    if name == "randi_2023":
        return read_funatlas_h5(path, strain)
    return read_nemanode_tsv(path)
