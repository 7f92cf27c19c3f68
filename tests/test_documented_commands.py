"""Every `snakemake` and `neurodag` command written in README.md, docs/ and config/ runs as written.

Commands are taken from fenced shell blocks and from inline code spans. A `neurodag` command must
name an existing subcommand whose options include every option it uses (its `--help` runs); the
cheap ones (`neurodag config`, `neurodag --help`) run. A `snakemake` command runs as a dry run in a
scratch copy of the workflow (with ../shared beside it), `--unlock` runs as written, and
`--report` runs on the default run's results. Templates (`neurodag <stage> ...`) are skipped.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO, SHARED_DATA, snakemake
from scratch_workflow import copy_workflow

SOURCES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SOURCES += sorted((REPO / "config").glob("*.yaml"))
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
SPAN = re.compile(r"`([^`]+)`")


def _commands_in(text: str) -> list[str]:
    found = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            found += [part.strip() for part in line.split("&&")]
    found += [" ".join(span.split()) for span in SPAN.findall(FENCE.sub("", text))]
    return [
        command
        for command in found
        if re.match(r"(snakemake|neurodag)( |$)", command)
        and command not in ("snakemake", "neurodag")
        and not re.search(r"[<{]", command)  # a template, not a command
    ]


def documented_commands() -> list[tuple[str, str]]:
    commands = {}
    for path in SOURCES:
        for command in _commands_in(path.read_text()):
            commands.setdefault(command, str(path.relative_to(REPO)))
    return sorted((source, command) for command, source in commands.items())


COMMANDS = documented_commands()
NEURODAG = [c for c in COMMANDS if c[1].startswith("neurodag")]
SNAKEMAKE = [c for c in COMMANDS if c[1].startswith("snakemake")]


def test_the_docs_hold_both_kinds_of_command():
    assert len(NEURODAG) >= 3 and len(SNAKEMAKE) >= 5, COMMANDS


def _subcommands():
    from neurodag.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return parser, action.choices


@pytest.mark.parametrize(("source", "command"), NEURODAG, ids=[c for _, c in NEURODAG])
def test_neurodag_command_exists_with_its_options(source, command, tmp_path):
    parser, subcommands = _subcommands()
    words = shlex.split(command)[1:]
    target = subcommands.get(words[0], parser) if words else parser
    known = set(target._option_string_actions)
    unknown = [w.split("=")[0] for w in words if w.startswith("-") and w.split("=")[0] not in known]
    assert not unknown, f"{source}: `{command}` uses options that do not exist: {unknown}"
    help_words = [words[0]] if target is not parser else []
    result = subprocess.run(
        [sys.executable, "-m", "neurodag", *help_words, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, f"{source}: `{command}`: {result.stderr}"
    (tmp_path / "my.yaml").write_text("datasets: {}\n")
    (tmp_path / "config").symlink_to(REPO / "config")
    files = [w for w in words[1:] if not w.startswith("-")]
    if words and words[0] == "config" and all((tmp_path / f).exists() for f in files):
        # cheap, and every file it names exists (FILE is a placeholder): run it as written
        result = subprocess.run(
            [sys.executable, "-m", "neurodag", *words], cwd=tmp_path, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{source}: `{command}`: {result.stderr}"


def test_configfile_values_are_config_files():
    """`--configfile` takes several values: a target after it is read as a config file."""
    for source, command in SNAKEMAKE:
        words = shlex.split(command)
        if "--configfile" not in words:
            continue
        after = words[words.index("--configfile") + 1 :]
        values = after[: next((i for i, w in enumerate(after) if w.startswith("-")), len(after))]
        bad = [v for v in values if not v.endswith((".yaml", ".yml"))]
        assert not bad, f"{source}: `{command}`: {bad} would be read as config files"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A copy of the workflow with the shared data folder beside it, as in a clone."""
    root = tmp_path_factory.mktemp("documented")
    workdir = copy_workflow(root / "repo")
    if SHARED_DATA.parent.is_dir():
        (root / "shared").symlink_to(SHARED_DATA.parent)
    (workdir / "my.yaml").write_text("datasets: {}\n")
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize(("source", "command"), SNAKEMAKE, ids=[c for _, c in SNAKEMAKE])
def test_snakemake_command_runs_as_a_dry_run(source, command, scratch, request):
    words = shlex.split(command)[1:]
    if any(name in command for name in ("dag2023", "rsa92")) and not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    if "--report" in words:
        workdir = request.getfixturevalue("default_run")
    elif "--unlock" in words:
        workdir = scratch
    else:
        workdir, words = scratch, ["-n", *words]
    result = snakemake(*words, cwd=workdir, timeout=600)
    assert result.returncode == 0, f"{source}: `{command}`:\n{result.stderr[-3000:]}"
