"""The docs name every CLI command and option, every metric the exporter emits and every alert rule."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from spreadwatch.edges.cli import cli

ROOT = Path(__file__).resolve().parents[1]


DOC_FILES = [ROOT / "README.md", ROOT / "RUNBOOK.md", *sorted((ROOT / "docs").glob("*.md"))]


def docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in DOC_FILES if p.exists())


def mentions(text: str, phrase: str) -> bool:
    """`phrase` as a whole word: `--db` is not in `--dbx`, `spreadwatch positions add` not in `... addons`."""
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text) is not None


def blocks_and_sections(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The Markdown's blocks (a paragraph, a list item, a table row, a fenced code block, a heading) and its
    sections (title, text from the heading to the next heading of the same or a higher level)."""
    lines = text.splitlines()
    blocks: list[str] = []
    headings: list[tuple[int, int, str]] = []
    current: list[str] = []
    fenced = False

    def flush() -> None:
        if current:
            blocks.append("\n".join(current))
            current.clear()

    for i, line in enumerate(lines):
        if line.startswith("```") or fenced:
            current.append(line)
            if line.startswith("```"):
                if fenced:
                    flush()
                fenced = not fenced
            continue
        heading = re.match(r"(#+)\s+(.*)", line)
        if heading:
            headings.append((i, len(heading.group(1)), heading.group(2)))
        if not line.strip() or heading or line.startswith("|") or re.match(r"\s*([-*]|\d+\.)\s", line):
            flush()
            if line.strip():
                current.append(line)
            if heading or line.startswith("|"):
                flush()
            continue
        current.append(line)
    flush()
    sections = []
    for n, (start, level, title) in enumerate(headings):
        end = next((i for i, other, _ in headings[n + 1:] if other <= level), len(lines))
        sections.append((title, "\n".join(lines[start:end])))
    return blocks, sections


def command_docs(path: str, texts: list[str]) -> str:
    """What the docs say about one command: every block that names it (`spreadwatch status ...`) and every section
    whose heading names it. An option mentioned only beside another command does not count."""
    found = []
    for text in texts:
        blocks, sections = blocks_and_sections(text)
        found += [block for block in blocks if mentions(block, path)]
        found += [body for title, body in sections if mentions(title, path)]
    return "\n".join(found)


def walk_commands(group: click.Group, prefix: str = "spreadwatch"):
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            yield from walk_commands(command, path)
        else:
            yield path, command


def long_options(command: click.Command) -> list[str]:
    return [opt for param in command.params if isinstance(param, click.Option) for opt in param.opts
            if opt.startswith("--") and opt != "--help"]


COMMANDS = list(walk_commands(cli))
GLOBAL_OPTIONS = long_options(cli)  # --config, --version: also accepted after the subcommand where they apply


def test_cli_has_the_commands_of_every_issue():
    names = {path for path, _ in COMMANDS}
    for expected in ("spreadwatch config check", "spreadwatch positions add", "spreadwatch positions list",
                     "spreadwatch status", "spreadwatch scan", "spreadwatch run", "spreadwatch grid build"):
        assert expected in names


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_and_option_is_documented(path, command):
    texts = [p.read_text(encoding="utf-8") for p in DOC_FILES if p.exists()]
    assert mentions("\n".join(texts), path), f"`{path}` is not mentioned in README.md or docs/"
    own = command_docs(path, texts)
    missing = [opt for opt in long_options(command) if opt not in GLOBAL_OPTIONS and not mentions(own, opt)]
    assert not missing, f"options of `{path}` documented nowhere beside it: {missing}"


def test_global_options_are_documented():
    blocks = [block for p in DOC_FILES if p.exists() for block in blocks_and_sections(p.read_text("utf-8"))[0]]
    documented = "\n".join(block for block in blocks if "Global options" in block)
    assert [opt for opt in GLOBAL_OPTIONS if not mentions(documented, opt)] == []


def test_an_option_counts_only_beside_its_command():
    doc = ("# Book\n\n`spreadwatch positions list [--db FILE]` lists.\n\n"
           "## `spreadwatch status`\n\n| option | meaning |\n|---|---|\n| `--at` | when |\n\n"
           "## Other\n\n`--json` somewhere else.\n\n`spreadwatch scan --all` lists every config.\n")
    status = command_docs("spreadwatch status", [doc])
    assert mentions(status, "--at") and not mentions(status, "--db") and not mentions(status, "--json")
    assert mentions(command_docs("spreadwatch positions list", [doc]), "--db")
    assert not mentions(command_docs("spreadwatch scan", [doc]), "--json")
    assert not mentions("--dbx and --db-path", "--db")


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
