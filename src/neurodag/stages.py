"""The stage registry: which analysis stages exist, and the contract each one keeps.

A stage is registered by its block in the config schema (``stages.<name>``) carrying
``x-package: neurodag.<name>``. That block holds the stage's parameters with their defaults (the
schema is the one source of defaults). The package's ``__init__`` keeps the contract
(``docs/stages.md``):

- ``HELP`` (one line), ``INPUTS`` (role -> help; the first role is the CLI's ``--input``),
  ``FIGURES`` (names of the figures ``figures`` always writes, ``<stem>.<name>.png``);
- ``run(inputs, params, *, compute, dataset=None, output=None) -> xr.Dataset``;
- ``validate(result, truth) -> xr.Dataset`` of ``validation_*`` variables;
- ``figures(result, stem) -> list[Path]``.

The registry drives the CLI (one subcommand per stage, every one built by
:func:`neurodag.cli.add_stage_command`), the workflow (``Snakefile`` includes
``workflow/rules/<name>.smk`` for each stage and gathers ``results/<name>/{dataset}.nc``) and the
summary table. Stage packages import only the standard library at module level, so that listing
the stages (``neurodag --help``, Snakemake's parse) stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from neurodag.errors import ConfigError

DECLARATIONS = ("HELP", "INPUTS", "FIGURES")
VERBS = ("run", "validate", "figures")


@dataclass(frozen=True)
class Stage:
    name: str
    package: str

    @property
    def module(self) -> ModuleType:
        """The package, its declarations checked (the verbs are imported when first used)."""
        module = importlib.import_module(self.package)
        self._check(module, DECLARATIONS)
        return module

    def verb(self, name: str):
        """``run``, ``validate`` or ``figures`` of the stage."""
        module = self.module
        self._check(module, (name,))
        return getattr(module, name)

    def _check(self, module: ModuleType, names) -> None:
        missing = [name for name in names if not hasattr(module, name)]
        if missing:
            raise ConfigError(
                f"stages.{self.name}: package {self.package} does not keep the stage contract "
                f"(missing {', '.join(missing)}; see docs/stages.md)"
            )

    @property
    def help(self) -> str:
        return self.module.HELP

    @property
    def input_roles(self) -> list[str]:
        return list(self.module.INPUTS)

    @property
    def figure_names(self) -> list[str]:
        return list(self.module.FIGURES)


@cache
def stages() -> dict[str, Stage]:
    """Every registered stage, in the schema's order (the order of the default run's targets)."""
    from neurodag.config import schema

    blocks = schema()["properties"]["stages"]["properties"]
    return {
        name: Stage(name, block["x-package"])
        for name, block in blocks.items()
        if "x-package" in block
    }


def stage(name: str) -> Stage:
    try:
        return stages()[name]
    except KeyError:
        raise ConfigError(f"no stage {name!r}; the stages are {', '.join(stages())}") from None


def lazy_verbs(implementation: str):
    """A module ``__getattr__`` that imports a stage's verbs from ``implementation`` on first use,
    so that a stage package's ``__init__`` stays free of heavy imports (one line per package:
    ``__getattr__ = lazy_verbs(__name__ + ".stage")``)."""

    def __getattr__(name: str):
        if name in ("run", "validate", "figures"):
            return getattr(importlib.import_module(implementation), name)
        raise AttributeError(f"module {implementation.rsplit('.', 1)[0]!r} has no {name!r}")

    return __getattr__
