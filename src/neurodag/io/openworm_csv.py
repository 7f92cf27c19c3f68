"""Reader for OpenWorm-style connectome edge lists (format ``openworm-csv``).

The layout is the "Connectome" sheet of OpenWorm's CElegansNeuronTables (Varshney et al. 2011,
as used by c302): columns ``Origin``, ``Target``, ``Type``, ``Number of Connections`` and
``Neurotransmitter``. ``Type`` is ``Send`` (chemical) or ``GapJunction`` (electrical); the common
synonyms below are accepted too.
"""

from __future__ import annotations

import pandas as pd

from neurodag.errors import InputError
from neurodag.io.connectome_tables import canonicalise_edges

REQUIRED_COLUMNS = ("Origin", "Target", "Type", "Number of Connections")
OPTIONAL_COLUMNS = ("Neurotransmitter",)

_TYPE_SYNONYMS = {
    "send": "chemical",
    "send joint": "chemical",
    "chemical": "chemical",
    "chem": "chemical",
    "s": "chemical",
    "sp": "chemical",
    "gapjunction": "electrical",
    "gap junction": "electrical",
    "gap_junction": "electrical",
    "gap": "electrical",
    "electrical": "electrical",
    "ej": "electrical",
}


def read_openworm_csv(path) -> pd.DataFrame:
    """Read one edge-list CSV into a canonical edge table (pre, post, synapse, weight)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError as exc:
        raise InputError(path, None, "file not found") from exc
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(path, None, f"not a readable CSV file ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError(path, None, "file is empty") from exc

    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            path,
            ", ".join(missing),
            f"missing column(s); found {list(table.columns)}, expected {list(REQUIRED_COLUMNS)}",
        )
    if table.empty:
        raise InputError(path, None, "no edges (header only)")

    counts = pd.to_numeric(table["Number of Connections"].str.strip(), errors="coerce")
    _refuse_rows(path, "Number of Connections", counts.isna(), table, "is not a number")
    _refuse_rows(path, "Number of Connections", counts < 0, table, "is negative")

    kinds = table["Type"].str.strip().str.lower().map(_TYPE_SYNONYMS)
    _refuse_rows(
        path,
        "Type",
        kinds.isna(),
        table,
        "is not a synapse type (expected Send or GapJunction)",
        column="Type",
    )

    edges = pd.DataFrame(
        {
            "pre": table["Origin"].str.strip(),
            "post": table["Target"].str.strip(),
            "synapse": kinds,
            "weight": counts.astype(float),
        }
    )
    edges = edges[edges["weight"] > 0]
    return canonicalise_edges(edges, path=path, columns=("Origin", "Target"))


def _refuse_rows(path, field, bad, table, what, column="Number of Connections"):
    if bad.any():
        rows = list(bad[bad].index[:5])
        values = [table.loc[r, column] for r in rows]
        shown = ", ".join(f"line {r + 2}: {v!r}" for r, v in zip(rows, values, strict=True))
        raise InputError(path, field, f"{int(bad.sum())} value(s) {what} ({shown})")
