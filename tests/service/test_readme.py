"""The README documents every command, configuration key and format (tested docs)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

import exports
from service.cli import main
from service.config import DEFAULTS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
CI_RUN = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "atlas") -> list[str]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        if name in {"run", "routes", "shell"}:  # Flask's own, documented by Flask
            continue
        command = group.get_command(ctx, name)
        path = f"{prefix} {name}"
        found.append(path)
        if isinstance(command, click.Group):
            found += _commands(command, path)
    return found


@pytest.mark.parametrize("command", _commands(main))
def test_every_cli_command_is_documented(command):
    *parents, leaf = command.split()
    assert re.search(rf"`{re.escape(' '.join(parents))} [^`]*\b{re.escape(leaf)}\b", README), \
        command


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_every_config_key_is_documented(key):
    assert f"`{key}`" in README


def test_every_format_is_documented(app):
    for fmt in exports.formats():
        assert f"`{fmt.name}`" in README, fmt.name
        assert f"`{fmt.media_types[0]}`" in README, fmt.name
        assert f"`.{fmt.extensions[0]}`" in README, fmt.name


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    commands = re.findall(r"```sh\n(.*?)\n```", README, re.S)[0].splitlines()
    assert len(commands) == 2
    install_and_demo, install_and_test = commands
    assert install_and_demo.endswith("atlas demo")
    assert install_and_test in CI_RUN
