"""The `spreadwatch` entry point: the everyday commands without click, everything else through click.

Importing click and building the whole command tree costs more than a stdlib-sqlite3 script takes to write a trade,
so a command line of `positions add`, `update`, `close`, `list` or `summary`, `status` or `scan` that this parser
understands in full is run here, from the declarations in edges/cli_book.py (the ones the click commands are built from), through the same
functions and with the same messages and exit codes. Anything else goes to click unchanged: `--help`, `--version`,
other commands, and every command line this parser is not sure of: an unknown or repeated option, a missing option
or value, a value its kind refuses (click then says what is wrong), `--`, a positional argument that looks like an
option, a path click would refuse (a directory, an unreadable file), an output stream click would re-encode.
Only the standard library and edges/cli_book.py are imported before the decision.
"""

from __future__ import annotations

import os
import sys

from spreadwatch.edges import cli_book

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

PROG = "spreadwatch"
_FALL_BACK = None  # what the parsers return for a command line they leave to click


def _path(value: str) -> str | None:
    """A path option's value as click's `OnDisk(dir_okay=False)` takes it, or None where click would refuse it (a
    directory, an unreadable file): click then says so."""
    import stat

    try:
        st = os.stat(value)
    except (OSError, ValueError):
        return value
    if stat.S_ISDIR(st.st_mode) or not os.access(value, os.R_OK):
        return None
    return value


def _convert(opt: cli_book.Opt, value: str) -> Any:
    """The value as click converts it (int(), float(), the text itself, a choice, a checked number), or _FALL_BACK
    where click would refuse it. A converted value cannot be None, so None says "refused"."""
    kind = opt.kind
    if kind == "text":
        return value
    if kind == "path":
        return _path(value)
    if kind == "choice":
        return value if value in opt.choices else _FALL_BACK
    if kind in cli_book.CHECKED_KINDS:
        from spreadwatch.domain import values

        try:
            return getattr(values, kind)(value)
        except values.ValueRefused:
            return _FALL_BACK
    try:
        return int(value) if kind == "int" else float(value)
    except ValueError:
        return _FALL_BACK


def _take_value(opt: cli_book.Opt, inline: str | None, rest: list[str]) -> tuple[bool, Any]:
    """(understood, value) of one option occurrence; `rest` loses the value when it is the next argument."""
    if opt.kind == "flag":
        return inline is None, True
    if inline is None:
        if not rest:
            return False, None
        inline = rest.pop(0)
    value = _convert(opt, inline)
    return value is not None, value


def _env_path(name: str) -> tuple[bool, str | None]:
    """(understood, value) of a path option's environment variable (unset or empty: no value, as click reads it)."""
    raw = os.environ.get(name)
    if not raw:
        return True, None
    value = _path(raw)
    return value is not None, value


def _parse_options(command: cli_book.Command, args: list[str]) -> tuple[dict[str, Any], str | None] | None:
    """The command's values and its own --config, or None when click should read this command line."""
    options = {opt.flag: opt for opt in (*command.options, cli_book.CONFIG)}
    given: dict[str, Any] = {}
    positionals: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg[:1] != "-" or arg == "-":
            positionals.append(arg)
            continue
        flag, eq, inline = arg.partition("=")
        opt = options.get(flag)
        if opt is None or flag in given:  # unknown (--help, -h, --, a negative number...) or repeated
            return _FALL_BACK
        understood, value = _take_value(opt, inline if eq else None, rest)
        if not understood:
            return _FALL_BACK
        given[flag] = value
    if len(positionals) != len(command.arguments):
        return _FALL_BACK
    values: dict[str, Any] = dict(zip(command.arguments, positionals, strict=True))
    for opt in command.options:
        if opt.flag in given:
            values[opt.dest] = given[opt.flag]
        elif opt.required:
            return _FALL_BACK
        elif opt.envvar is not None:
            understood, values[opt.dest] = _env_path(opt.envvar)
            if not understood:
                return _FALL_BACK
        else:
            values[opt.dest] = opt.value_when_absent()
    return values, given.get(cli_book.CONFIG.flag)


def parse(argv: Sequence[str]) -> tuple[cli_book.Command, str | None, dict[str, Any]] | None:
    """(command, config path, values) of `[--config FILE] positions COMMAND ...` or `[--config FILE] status|scan
    ...`, or None for click to read."""
    args = list(argv)
    root_config: str | None = None
    if args[:1] == ["--config"] and len(args) > 1:
        root_config = _path(args[1])
        del args[:2]
        if root_config is None:
            return _FALL_BACK
    elif args[:1] and args[0].startswith("--config="):
        root_config = _path(args.pop(0).partition("=")[2])
        if root_config is None:
            return _FALL_BACK
    else:
        understood, root_config = _env_path(cli_book.ROOT_CONFIG.envvar or "")
        if not understood:
            return _FALL_BACK
    if args[:1] and args[0] in cli_book.MARKET_COMMANDS:
        command, args = cli_book.MARKET_COMMANDS[args[0]], args[1:]
    elif len(args) >= 2 and args[0] == "positions" and args[1] in cli_book.COMMANDS:
        command, args = cli_book.COMMANDS[args[1]], args[2:]
    else:
        return _FALL_BACK
    parsed = _parse_options(command, args)
    if parsed is None:
        return _FALL_BACK
    values, own_config = parsed
    return command, own_config if own_config is not None else root_config, values


def _ascii_stream() -> bool:
    """click re-encodes output to an ASCII-only stream; those runs are left to it."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "ascii"
        try:
            if codecs.lookup(encoding).name == "ascii":
                return True
        except LookupError:
            return True
    return False


def run(command: cli_book.Command, config_path: str | None, values: dict[str, Any]) -> int:
    """Run a parsed command as the click path would: the same output, one-line errors and exit codes."""
    from spreadwatch.errors import MalformedValue, SpreadwatchError

    try:
        command.run(cli_book.Context(config_path), **values)
    except MalformedValue as exc:
        cli_book.echo(f"Error: {exc} (see '{PROG} {command.path} --help')", err=True)
        return 2
    except cli_book.UsageWithoutHint as exc:
        cli_book.echo(f"Error: {exc}", err=True)
        return 2
    except SpreadwatchError as exc:
        cli_book.echo(f"Error: {exc}", err=True)
        return 1
    except (EOFError, KeyboardInterrupt):
        cli_book.echo("", err=True)  # closes the terminal's ^C echo
        cli_book.echo("Aborted!", err=True)
        return 1
    except BrokenPipeError:  # `spreadwatch positions list | head`
        sys.stderr.close()
        return 1
    return 0


def main() -> None:
    """The console script: the fast path for a command line it understands in full, else click."""
    parsed = parse(sys.argv[1:]) if not _ascii_stream() else None
    if parsed is not None:
        sys.exit(run(*parsed))
    from spreadwatch.edges.cli import main as click_main

    click_main()


if __name__ == "__main__":  # pragma: no cover
    main()
