"""One source of defaults: every default in code that stands for a config key equals the schema's.

The schema (``src/neurodag/schemas/config.schema.yaml``) holds every default. Code that keeps a
default of its own for a config key (a dataclass field, a keyword argument) must agree with it; a
schema ``null`` for a model option means "the model's own default" and is documented as such.
"""

import dataclasses
import inspect

import pytest

from neurodag.config import defaults


def _code_defaults(target):
    if dataclasses.is_dataclass(target):
        return {
            f.name: f.default
            for f in dataclasses.fields(target)
            if f.default is not dataclasses.MISSING
        }
    return {
        name: p.default
        for name, p in inspect.signature(target).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _targets():
    from neurodag.bicluster.sampler import Settings
    from neurodag.compute import Compute
    from neurodag.latents.model import GRUSequentialVAE, LangevinFlow
    from neurodag.latents.train import TrainSettings, infer, split_trials
    from neurodag.mds.clustering import MDSClustering
    from neurodag.mds.model import train_model

    return [
        (Settings, "stages.bicluster"),
        (TrainSettings, "stages.latents"),
        (LangevinFlow.__init__, "stages.latents"),
        (GRUSequentialVAE.__init__, "stages.latents"),
        (split_trials, "stages.latents"),
        (infer, "stages.latents"),
        (train_model, "stages.mds.model"),
        (MDSClustering.__init__, "stages.mds.clustering"),
        (MDSClustering.__init__, "stages.mds"),
        (Compute, "compute"),
    ]


@pytest.mark.parametrize(
    ("target", "section"), _targets(), ids=lambda x: getattr(x, "__qualname__", x)
)
def test_code_defaults_equal_the_schema(target, section):
    schema = defaults(section)
    for name, value in _code_defaults(target).items():
        if name not in schema or schema[name] is None:
            continue  # not a config key here, or "the model's own default"
        assert value == schema[name], f"{target.__qualname__}.{name}: {value!r}, schema {section}"


def test_the_bicluster_and_latents_defaults_come_from_the_schema():
    from neurodag.bicluster.sampler import Settings
    from neurodag.latents.train import TrainSettings

    assert Settings().n_iterations == defaults("stages.bicluster")["n_iterations"]
    assert TrainSettings().steps == defaults("stages.latents")["steps"]


def test_slurm_settings_take_the_schema_defaults():
    from neurodag.compute import dask_settings

    settings = dask_settings({"cluster": "slurm"})
    assert settings["slurm"]["jobs"] == defaults("compute.dask.slurm")["jobs"]
