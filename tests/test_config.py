"""Config: schema defaults, clear errors naming the key, merging of a user's --configfile."""

import pytest
import yaml
from conftest import REPO, run_cli

from neurodag.config import deep_merge, load_config, validate
from neurodag.errors import ConfigError

CONNECTOME = {"kind": "connectome", "format": "wormneuroatlas"}


def test_defaults_are_filled():
    config = validate({"datasets": {"c": {"kind": "connectome", "format": "wormneuroatlas"}}})
    assert config["datasets"]["c"]["enabled"] is True
    assert config["stages"]["homogenize"]["connectome"]["functional_q_max"] == 0.05


def test_default_config_file_is_valid():
    config = load_config([REPO / "config" / "config.yaml"])
    assert "connectome" in config["datasets"]


@pytest.mark.parametrize(
    ("config", "key", "expected"),
    [
        ({"datasets": {"c": {**CONNECTOME, "format": "nope"}}}, "datasets.c.format", "one of"),
        ({"datasets": {"c": {"kind": "bacteria", "format": "x"}}}, "datasets.c.kind", "one of"),
        ({"datasets": {}, "stages": {"homogenise": {}}}, "stages", "homogenise"),
        ({"datasets": {"c": {**CONNECTOME, "format": "openworm-csv"}}}, "datasets.c", "path"),
        (
            {"datasets": {}, "stages": {"homogenize": {"connectome": {"functional_q_max": 2}}}},
            "stages.homogenize.connectome.functional_q_max",
            "1",
        ),
    ],
)
def test_invalid_config_names_the_key(config, key, expected):
    with pytest.raises(ConfigError) as info:
        validate(config)
    message = str(info.value)
    assert key in message
    assert expected in message


def test_deep_merge_overrides_leaves_only():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    assert deep_merge(base, {"a": {"c": 5}}) == {"a": {"b": 1, "c": 5}, "d": 3}
    assert base == {"a": {"b": 1, "c": 2}, "d": 3}


def test_user_configfile_merges_over_defaults(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text(
        yaml.safe_dump(
            {
                "datasets": {"mine": {"kind": "connectome", "format": "wormneuroatlas"}},
                "stages": {"homogenize": {"connectome": {"functional_q_max": 0.01}}},
            }
        )
    )
    merged = load_config([REPO / "config" / "config.yaml", user])
    assert set(merged["datasets"]) >= {"connectome", "mine"}
    assert merged["stages"]["homogenize"]["connectome"]["functional_q_max"] == 0.01
    assert merged["stages"]["homogenize"]["connectome"]["functional_strain"] == "wt"


def test_config_command(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  c: {kind: connectome, format: csv}\n")
    result = run_cli("config", str(REPO / "config" / "config.yaml"), str(bad))
    assert result.returncode == 2
    assert "datasets.c.format" in result.stderr
    good = run_cli("config", str(REPO / "config" / "config.yaml"))
    assert good.returncode == 0, good.stderr
    assert yaml.safe_load(good.stdout)["datasets"]["connectome"]["enabled"] is True


def test_missing_config_file():
    result = run_cli("config", "/nonexistent/config.yaml")
    assert result.returncode == 2
    assert "/nonexistent/config.yaml" in result.stderr
