"""Progress output for long work (training, MCMC, restarts, many worms).

Progress goes to stderr, which the Snakemake rules send to ``results/logs/``; in a log file (not a
terminal) the bar is redrawn at most every ``log_interval`` seconds so logs stay readable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress(
    iterable: Iterable[T] | None = None,
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    log_interval: float = 10.0,
):
    """A tqdm bar on stderr; use as an iterator wrapper or a context manager with ``update``."""
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        mininterval=0.2 if interactive else log_interval,
        dynamic_ncols=interactive,
        ncols=None if interactive else 100,
        ascii=not interactive,
    )
