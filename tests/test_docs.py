"""The docs name every CLI command and option, every metric the exporter emits and every alert rule."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from spreadwatch.edges.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def docs_text() -> str:
    parts = [ROOT / "README.md", ROOT / "RUNBOOK.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(p.read_text(encoding="utf-8") for p in parts if p.exists())


def walk_commands(group: click.Group, prefix: str = "spreadwatch"):
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            yield from walk_commands(command, path)
        else:
            yield path, command


COMMANDS = list(walk_commands(cli))


def test_cli_has_the_commands_of_every_issue():
    names = {path for path, _ in COMMANDS}
    for expected in ("spreadwatch config check", "spreadwatch positions add", "spreadwatch positions list",
                     "spreadwatch status", "spreadwatch scan", "spreadwatch run", "spreadwatch grid build"):
        assert expected in names


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_and_option_is_documented(path, command):
    text = docs_text()
    assert path in text, f"`{path}` is not mentioned in README.md or docs/"
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                if opt.startswith("--") and opt not in ("--help",):
                    assert opt in text, f"option {opt} of `{path}` is not documented"


def emitted_metric_names() -> set[str]:
    source = (ROOT / "exporter" / "spreadwatch" / "edges" / "collector.py").read_text(encoding="utf-8")
    return set(re.findall(r"\"(spreadwatch_[a-z0-9_]+)\"", source))


def test_every_metric_the_collector_emits_is_documented():
    names = emitted_metric_names()
    assert len(names) > 30, "the collector should emit the whole metric contract"
    text = docs_text()
    missing = sorted(n for n in names if n not in text)
    assert not missing, f"metrics missing from the docs: {missing}"


def rule_alerts() -> list[str]:
    names = []
    for path in sorted((ROOT / "prometheus" / "rules").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in data["groups"]:
            names += [rule["alert"] for rule in group["rules"] if "alert" in rule]
    return names


def test_every_alert_is_documented_with_a_runbook_heading():
    names = rule_alerts()
    assert "SpreadwatchWatchdog" in names
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    runbook = (ROOT / "RUNBOOK.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#+\s+(\w+)", runbook, flags=re.M))
    for name in names:
        assert name in readme, f"alert {name} missing from the README's alerts table"
        assert name in headings, f"alert {name} has no RUNBOOK.md heading"
