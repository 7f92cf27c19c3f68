"""Edge tables of synapse counts, and their conversion to matrices over the canonical neurons.

Every connectome reader produces an edge table: a DataFrame with columns ``pre``, ``post``,
``synapse`` ("chemical" or "electrical") and ``weight`` (synapse count), with canonical names.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from neurodag.errors import InputError
from neurodag.neurons import NameReport, canonical_neurons, map_names

log = logging.getLogger(__name__)

ANATOMICAL_SYNAPSES = ("chemical", "electrical")
EDGE_COLUMNS = ("pre", "post", "synapse", "weight")


def canonicalise_edges(
    edges: pd.DataFrame,
    *,
    path,
    columns: tuple[str, str] = ("pre", "post"),
    aliases: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Map ``pre``/``post`` names to canonical ones; log and drop non-neuronal cells.

    ``edges`` keeps the row index of the file it was read from (row 0 = line 2, under the header).

    Unknown names (neither canonical neurons nor known non-neuronal cells, usually a typo) are an
    input error naming the file and the column, since dropping them would silently lose edges.
    """
    mapping, report = map_names(pd.unique(edges[["pre", "post"]].to_numpy().ravel()), aliases)
    if report.unknown:
        bad = sorted(report.unknown)
        column = columns[0] if edges["pre"].isin(bad).any() else columns[1]
        first = edges.index[edges["pre"].isin(bad) | edges["post"].isin(bad)][0]
        raise InputError(
            path,
            column,
            f"unknown neuron name(s) {', '.join(bad)} (first on line {first + 2}); "
            "expected canonical C. elegans neuron names such as AVAL or VB1",
        )
    _log_report(path, report)
    out = edges.assign(pre=edges["pre"].map(mapping), post=edges["post"].map(mapping))
    return out.dropna(subset=["pre", "post"]).reset_index(drop=True)


def _log_report(path, report: NameReport) -> None:
    if report.renamed:
        log.info("%s: renamed %s", path, ", ".join(f"{a}->{b}" for a, b in report.renamed.items()))
    if report.non_neuronal:
        log.warning(
            "%s: %d cell name(s) are not canonical neurons and their edges are excluded: %s",
            path,
            len(report.non_neuronal),
            ", ".join(sorted(report.non_neuronal)),
        )


def edges_to_matrices(edges: pd.DataFrame) -> dict[str, np.ndarray]:
    """Sum an edge table into ``{synapse: matrix[pre, post]}`` over the canonical neurons.

    Gap junctions are undirected; sources list them once or in both directions, so the electrical
    matrix is symmetrised by the elementwise maximum of the two directions (no double counting).
    """
    neurons = pd.Index(canonical_neurons())
    n = len(neurons)
    matrices = {}
    for synapse in ANATOMICAL_SYNAPSES:
        sub = edges[edges["synapse"] == synapse]
        matrix = np.zeros((n, n))
        np.add.at(
            matrix,
            (neurons.get_indexer(sub["pre"]), neurons.get_indexer(sub["post"])),
            sub["weight"].to_numpy(dtype=float),
        )
        if synapse == "electrical":
            matrix = np.maximum(matrix, matrix.T)
        matrices[synapse] = matrix
    return matrices
