"""The install contract: README commands, CI script, and environment.yml in step with pyproject."""

import re
import tomllib

import yaml
from conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)\n(.+?)\n```", quickstart, flags=re.S)


def test_readme_has_exactly_two_quickstart_commands():
    commands = readme_commands()
    assert len(commands) == 2
    install_and_run, install_and_test = commands
    assert install_and_run.rstrip().endswith("snakemake --cores all")
    assert "pytest" in install_and_test


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()


def test_environment_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert sorted(pip) == sorted(project["dependencies"])
    assert "torch==2.13.0" in project["dependencies"]


def test_schema_in_workflow_is_the_packaged_one():
    workflow = REPO / "workflow" / "schemas" / "config.schema.yaml"
    packaged = REPO / "src" / "neurodag" / "schemas" / "config.schema.yaml"
    assert workflow.read_text() == packaged.read_text()
