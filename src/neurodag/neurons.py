"""The canonical C. elegans neuron list and neuron-name normalisation.

The canonical order is the one of the homogenized C. elegans collection (Simeon et al.,
"Homogenized C. elegans Neural Activity and Connectivity Data"): the 302 hermaphrodite neurons
less the two canal-associated neurons CANL/CANR, which are not recorded in calcium imaging,
sorted alphabetically (plain string order: AS1, AS10, AS11, AS2, ...), 300 names in all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources


@cache
def canonical_neurons() -> tuple[str, ...]:
    """The 300 canonical neuron names, alphabetical."""
    text = resources.files("neurodag").joinpath("data/neurons_300.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@cache
def _canonical_set() -> frozenset[str]:
    return frozenset(canonical_neurons())


# Numbered motor-neuron classes are written with zero padding by some sources (VB01, DA09).
_PADDED_CLASS = re.compile(r"^(AS|DA|DB|DD|VA|VB|VC|VD)0+(\d+)$")

# Cells that appear in connectome tables but are not among the 300 canonical neurons:
# CANL/CANR (excluded by convention), muscles, glia and other non-neuronal cells.
_NON_NEURONAL = re.compile(
    r"""^(
        CAN[LR]                                    # canal-associated neurons (excluded)
      | BWM-[DV][LR]\d+ | [DV][LR]\d+ | M[DV][LR]\d+  # body-wall muscles
      | LegacyBodyWallMuscles | BWM | NMJ
      | pm\d+[A-Z]* | mc\d+[A-Z]* | mu_\w+ | um\d+\w* | vm\d+\w* | MVULVA | MANAL
      | GLR\w* | CEPsh\w* | exc\w* | hyp\w* | hmc | g[12]\w*  # glia and other cells
    )$""",
    re.VERBOSE,
)

# wormneuroatlas stores the AWC pair by its functional identity; its own documented convention
# maps the anatomical AWCL to AWCOFF and AWCR to AWCON (funatlas.h5 truncates AWCOFF to AWCOF).
WORMNEUROATLAS_ALIASES = {"AWCOFF": "AWCL", "AWCOF": "AWCL", "AWCON": "AWCR"}


def normalise_name(name: str, aliases: dict[str, str] | None = None) -> str:
    """Normalise a neuron name: strip, upper-case, drop zero padding (VB01 -> VB1)."""
    name = str(name).strip()
    if aliases and name in aliases:
        return aliases[name]
    upper = name.upper()
    match = _PADDED_CLASS.match(upper)
    if match:
        return f"{match.group(1)}{int(match.group(2))}"
    if upper in _canonical_set():
        return upper
    return name


def is_canonical(name: str) -> bool:
    return name in _canonical_set()


def is_non_neuronal(name: str) -> bool:
    """True for cells known not to be among the canonical neurons (muscles, glia, CANL/CANR)."""
    return bool(_NON_NEURONAL.match(name))


@dataclass
class NameReport:
    """How a source's cell names mapped onto the canonical list."""

    renamed: dict[str, str] = field(default_factory=dict)
    non_neuronal: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)

    def summary(self) -> str:
        parts = []
        if self.renamed:
            parts.append(
                "renamed " + ", ".join(f"{a}->{b}" for a, b in sorted(self.renamed.items()))
            )
        if self.non_neuronal:
            parts.append("not canonical neurons, excluded: " + ", ".join(sorted(self.non_neuronal)))
        if self.unknown:
            parts.append("unknown names: " + ", ".join(sorted(self.unknown)))
        return "; ".join(parts) if parts else "all names canonical"


def map_names(names: Iterable[str], aliases: dict[str, str] | None = None):
    """Map raw names to canonical ones.

    Returns ``(mapping, report)``: ``mapping[raw]`` is the canonical name, or None for a cell that
    is not a canonical neuron. The report lists renamed, non-neuronal and unknown names so that a
    caller can log them (never drop silently) or refuse the input.
    """
    mapping: dict[str, str | None] = {}
    report = NameReport()
    for raw in names:
        if raw in mapping:
            continue
        name = normalise_name(raw, aliases)
        if is_canonical(name):
            mapping[raw] = name
            if name != raw:
                report.renamed[raw] = name
        else:
            mapping[raw] = None
            (report.non_neuronal if is_non_neuronal(name) else report.unknown).add(str(raw))
    return mapping, report
