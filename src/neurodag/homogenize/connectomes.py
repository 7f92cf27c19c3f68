"""Homogenized C. elegans connectomes and their consensus.

Following Simeon et al., "Homogenized C. elegans Neural Activity and Connectivity Data", every
connectome source is placed on the same canonical 300-neuron axis (names normalised, gap junctions
symmetrised) so that sources can be compared and combined. The consensus of the anatomical sources
is, per edge and synapse type, the mean of the nonzero weights across sources, with the number of
sources supporting the edge kept beside it. The signal propagation atlas is kept as its own
``functional`` synapse type (its weights are signed dF/F responses, not synapse counts).

Output: ``weight(source, synapse, pre, post)``, ``synapse`` in {chemical, electrical, functional},
NaN where a source does not measure a synapse type.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurodag.config import stage_defaults
from neurodag.errors import ConfigError
from neurodag.io.connectome_tables import ANATOMICAL_SYNAPSES, edges_to_matrices
from neurodag.io.formats import lookup, recording_files
from neurodag.io.openworm_csv import read_openworm_csv
from neurodag.io.paths import resolve_files
from neurodag.io.wormneuroatlas import (
    PACKAGED_SOURCES,
    data_dir,
    read_packaged_source,
    source_path,
)
from neurodag.neurons import canonical_neurons

log = logging.getLogger(__name__)

SYNAPSES = (*ANATOMICAL_SYNAPSES, "functional")
CONSENSUS = "consensus"


def wormneuroatlas_files(
    spec: Mapping[str, Any], recording: str | None, suffixes: tuple[str, ...]
) -> list[Path]:
    """The packaged (or ``path``'s) files of the dataset's wormneuroatlas sources."""
    folder = Path(spec["path"]) if spec.get("path") else data_dir()
    names = spec.get("sources") or list(PACKAGED_SOURCES)
    return [source_path(name, folder) for name in names if name in PACKAGED_SOURCES]


def edge_list_files(
    spec: Mapping[str, Any], recording: str | None, suffixes: tuple[str, ...]
) -> list[Path]:
    """The edge-list files of an openworm-csv dataset (one source each)."""
    return resolve_files(spec["path"], suffixes)


def build_connectome(
    spec: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> xr.Dataset:
    """Read every source of a connectome dataset and add their consensus.

    ``spec`` is the dataset's config entry (``format``, optional ``path`` and ``sources``);
    ``parameters`` are ``stages.homogenize.connectome``; absent keys take the schema's defaults.
    """
    params = {**stage_defaults("homogenize")["connectome"], **(parameters or {})}
    n = len(canonical_neurons())
    nan = np.full((n, n), np.nan)
    weights: dict[str, dict[str, np.ndarray]] = {}
    kinds: dict[str, str] = {}
    references: dict[str, str] = {}
    functional: dict[str, np.ndarray] = {}

    if spec["format"] == "wormneuroatlas":
        folder = Path(spec["path"]) if spec.get("path") else data_dir()
        for name in spec.get("sources") or list(PACKAGED_SOURCES):
            source = read_packaged_source(name, folder, strain=params["functional_strain"])
            info = PACKAGED_SOURCES[name]
            kinds[name], references[name] = info.kind, info.reference
            if info.kind == "functional":
                functional = source
                # A few pairs have a q-value but no mean response: not usable as a weight.
                significant = (source["q"] < params["functional_q_max"]) & np.isfinite(
                    source["dff"]
                )
                weights[name] = {
                    "chemical": nan,
                    "electrical": nan,
                    "functional": np.where(significant, source["dff"], 0.0),
                }
            else:
                weights[name] = {**source, "functional": nan}
    elif spec["format"] == "openworm-csv":
        for path in recording_files(spec):
            name = path.stem
            if name in weights:
                raise ConfigError(f"two connectome files share the source name {name!r}")
            weights[name] = {**edges_to_matrices(read_openworm_csv(path)), "functional": nan}
            kinds[name], references[name] = "anatomical", str(path)
    else:
        lookup(spec)  # raises the ConfigError for an unknown format

    for name, source in weights.items():
        counts = ", ".join(
            f"{int(np.count_nonzero(np.nan_to_num(source[s])))} {s}" for s in SYNAPSES
        )
        log.info("source %s: %s edges", name, counts)

    consensus_names = params["consensus_sources"] or [
        name for name, kind in kinds.items() if kind == "anatomical"
    ]
    unknown = [name for name in consensus_names if name not in weights]
    if unknown:
        raise ConfigError(
            f"stages.homogenize.connectome.consensus_sources: {unknown} are not sources of this "
            f"dataset (it has {list(weights)})"
        )
    if consensus_names:
        consensus, support = consensus_weights([weights[name] for name in consensus_names])
    else:
        log.warning("no anatomical source: the consensus has no chemical or electrical weights")
        consensus = {synapse: nan for synapse in ANATOMICAL_SYNAPSES}
        support = {synapse: np.zeros((n, n), dtype=np.int16) for synapse in ANATOMICAL_SYNAPSES}
    if functional:
        consensus["functional"] = weights["randi_2023"]["functional"]
        support["functional"] = (consensus["functional"] != 0).astype(np.int16)
    else:
        consensus["functional"] = nan
        support["functional"] = np.zeros((n, n), dtype=np.int16)
    log.info(
        "consensus over %s: %d chemical, %d electrical edges",
        ", ".join(consensus_names),
        np.count_nonzero(consensus["chemical"]),
        np.count_nonzero(consensus["electrical"]),
    )
    weights[CONSENSUS] = consensus
    kinds[CONSENSUS] = "consensus"
    references[CONSENSUS] = "mean of nonzero weights over: " + ", ".join(consensus_names)
    return _to_dataset(weights, support, kinds, references, functional)


def consensus_weights(
    sources: list[Mapping[str, np.ndarray]],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per synapse type: mean of the nonzero weights across sources, and how many have it."""
    consensus, support = {}, {}
    for synapse in ANATOMICAL_SYNAPSES:
        stack = np.stack([np.nan_to_num(s[synapse]) for s in sources])
        count = np.count_nonzero(stack, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            consensus[synapse] = np.where(count > 0, stack.sum(axis=0) / count, 0.0)
        support[synapse] = count.astype(np.int16)
    return consensus, support


def _to_dataset(weights, support, kinds, references, functional) -> xr.Dataset:
    neurons = list(canonical_neurons())
    names = list(weights)
    weight = np.stack([np.stack([weights[s][syn] for syn in SYNAPSES]) for s in names])
    ds = xr.Dataset(
        {
            "weight": (("source", "synapse", "pre", "post"), weight.astype(np.float32)),
            "support": (("synapse", "pre", "post"), np.stack([support[s] for s in SYNAPSES])),
            "source_kind": ("source", [kinds[s] for s in names]),
            "source_reference": ("source", [references[s] for s in names]),
        },
        coords={"source": names, "synapse": list(SYNAPSES), "pre": neurons, "post": neurons},
    )
    ds["weight"].attrs = {
        "long_name": "connection weight from pre to post",
        "units": "synapse count (chemical, electrical); mean dF/F (functional)",
        "note": "NaN where the source does not measure this synapse type",
    }
    ds["support"].attrs = {
        "long_name": "number of consensus sources with a nonzero weight on this edge",
    }
    if functional:
        dims = ("pre", "post")
        ds["functional_dff"] = (dims, functional["dff"].astype(np.float32))
        ds["functional_q"] = (dims, functional["q"].astype(np.float32))
        ds["functional_trials"] = (dims, functional["trials"].astype(np.int32))
        ds["functional_dff"].attrs = {
            "long_name": "mean dF/F of post after optogenetic stimulation of pre",
            "note": "NaN where the pair was never measured",
        }
        ds["functional_q"].attrs = {"long_name": "q-value of the response (Randi et al. 2023)"}
        ds["functional_trials"].attrs = {"long_name": "number of stimulation trials"}
    ds.attrs["description"] = "C. elegans connectomes on the canonical 300-neuron axis"
    return ds
