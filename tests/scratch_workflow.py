"""A scratch copy of the workflow to run Snakemake in (tests and benchmarks)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_workflow(dest: Path) -> Path:
    """Copy the Snakefile, rules, profiles, config and environment into ``dest`` (created if
    absent)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "profiles", "config", "environment.yml"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, symlinks=True)
        else:
            shutil.copy(source, dest / name)
    # the workflow's schema is a symlink into the package: keep it resolvable in the copy
    link = dest / "workflow" / "schemas" / "config.schema.yaml"
    link.unlink()
    shutil.copy(REPO / "src" / "neurodag" / "schemas" / "config.schema.yaml", link)
    return dest
