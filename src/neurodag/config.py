"""Configuration: loading, merging, validation against the JSON schema, and defaults.

The schema (``workflow/schemas/config.schema.yaml``, shipped inside the package) is the one place
where defaults live; both the Snakefile and the CLI validate through :func:`validate`, so an invalid
config stops with one message that names the key and what was expected.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from neurodag.errors import ConfigError


@cache
def schema() -> dict[str, Any]:
    text = resources.files("neurodag").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _with_defaults(validator_class, jsonschema):
    """A validator class that also fills in ``default`` values of absent properties."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, sub_schema):
        if isinstance(instance, dict):
            for name, prop in properties.items():
                if "default" in prop and name not in instance:
                    instance[name] = copy.deepcopy(prop["default"])
        yield from validate_properties(validator, properties, instance, sub_schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


@cache
def _validator_class():
    import jsonschema  # imported on first validation: `neurodag --help` does not need it

    return _with_defaults(jsonschema.Draft202012Validator, jsonschema)


def _key(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def validate(config: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate a config and return a copy with defaults filled in; ConfigError on failure."""
    instance = copy.deepcopy(dict(config))
    errors = sorted(_validator_class()(schema()).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        lines = [f"{_key(e.absolute_path)}: {_explain(e)}" for e in errors]
        raise ConfigError(f"invalid configuration ({source}):\n  " + "\n  ".join(lines))
    return instance


def _explain(error) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}; allowed keys: {', '.join(allowed) or 'none'}"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    return error.message


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` over ``base`` (the way Snakemake merges --configfile)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Read YAML files in order, each merged over the previous, then validate."""
    config: dict[str, Any] = {}
    names = []
    for path in paths:
        path = Path(path)
        names.append(str(path))
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: config file not found") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        config = deep_merge(config, loaded)
    return validate(config, source=", ".join(names))


def stage_parameters(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    return dict(config.get("stages", {}).get(stage, {}))


def stage_defaults(stage: str) -> dict[str, Any]:
    """A stage's parameter defaults, as the schema states them."""
    return defaults(f"stages.{stage}")


def defaults(key: str) -> dict[str, Any]:
    """The schema's defaults of a config section (``"stages.bicluster"``, ``"compute.dask"``):
    code that needs a default takes it from here, never from a literal of its own."""
    section: Any = _schema_defaults()
    for part in key.split("."):
        section = section[part]
    return copy.deepcopy(section)


@cache
def _schema_defaults() -> dict[str, Any]:
    return validate({"datasets": {}})


def enabled_datasets(config: Mapping[str, Any], kind: str | None = None) -> list[str]:
    return [
        name
        for name, spec in config["datasets"].items()
        if spec.get("enabled", True) and (kind is None or spec["kind"] == kind)
    ]
