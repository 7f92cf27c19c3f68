"""Resolving a config ``path:`` (a file, a folder, or a glob) into the files it names."""

from __future__ import annotations

import glob
from pathlib import Path

from neurodag.errors import InputError


def resolve_files(path: str | Path, suffixes: tuple[str, ...], field: str = "path") -> list[Path]:
    """Files named by ``path``: the file itself, a folder's files with one of ``suffixes``
    (not recursive), or a glob's matches. Sorted; an empty result is an error naming the path."""
    text = str(path)
    candidate = Path(text).expanduser()
    if any(ch in text for ch in "*?["):
        files = [Path(p) for p in glob.glob(str(candidate), recursive=True)]
    elif candidate.is_dir():
        files = [p for p in candidate.iterdir() if p.suffix.lower() in suffixes]
    elif candidate.exists():
        files = [candidate]
    else:
        raise InputError(candidate, field, "no such file or folder")
    files = sorted(p for p in files if p.is_file())
    if not files:
        raise InputError(candidate, field, f"matches no {'/'.join(suffixes)} files")
    return files
