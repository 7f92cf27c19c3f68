"""Errors that the CLI turns into one clear message and a non-zero exit."""

from __future__ import annotations

from pathlib import Path


class NeurodagError(Exception):
    """Base class for errors a user can act on (bad input, bad config)."""


class InputError(NeurodagError):
    """A problem with an input file: names the file and the field (column, key, dataset)."""

    def __init__(self, path: str | Path | None, field: str | None, message: str):
        self.path = str(path) if path is not None else None
        self.field = field
        self.message = message
        where = ": ".join(part for part in (self.path, self.field) if part)
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(NeurodagError, ValueError):
    """An invalid configuration: names the key and what was expected (a ValueError too, so
    library callers of a generator can catch the usual exception)."""
