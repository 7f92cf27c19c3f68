"""One figure style for every stage, and an atomic PNG writer.

Stages call :func:`figure` for a styled figure and :func:`save_figure` to write it next to their
NetCDF output. matplotlib is imported here only, with the non-interactive Agg backend, so figures
render on headless cluster nodes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

STYLE: dict[str, Any] = {
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "legend.frameon": False,
    "image.cmap": "viridis",
}
#: Colour maps by kind of data: sequential magnitudes, signed values, categorical labels.
SEQUENTIAL, DIVERGING, CATEGORICAL = "viridis", "RdBu_r", "tab10"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float = 4.0, **kwargs):
    """A styled ``(fig, axes)`` pair; ``axes`` is squeezed as in ``plt.subplots``."""
    plt = _pyplot()
    return plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kwargs)


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` as PNG atomically (temporary file, then rename) and close it."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)
    return path
