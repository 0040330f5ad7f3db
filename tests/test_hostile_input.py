"""Hostile and careless input: a table of bad inputs to every way in (flags, config files, positions import, grid
files, the book), each answered with one line on stderr, no traceback, every file the command could touch
byte-identical afterwards (no stray file either), and the exit code of the rule in docs/positions.md:

- 2: the command line is malformed. Click's usage errors (an unknown command or option, a missing argument or
  value) and a value that is not a valid value of its kind on its own, whatever the config, clock, calendar, book
  or disk hold: not a number, not finite, beyond its bound, an unknown band or spread, text that is not valid
  UTF-8, not an ISO 8601 instant with a zone, not a usable position id, not HOST:PORT.
- 1: every value is well-formed, but the command cannot be done with them: they contradict each other or the
  calendar (a leg the spread does not have, an expiry that is not a session or before the entry, an entry in the
  future), or what they name is missing, of the wrong kind or corrupt (a book, a directory where a file belongs, a
  config, import or grid file with bad content, an unknown position id or ticker, a host that does not resolve, a
  port in use).

`positions add` and `positions import` refuse a value with the same words (domain/values.py): on the command line
it is malformed (2), in a file it is that file's bad content (1).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from spreadwatch.edges.cli import cli

PUT = ["--dte", "3", "--band", "P97", "--spread", "put_spread", "--contracts", "1", "--credit", "200",
       "--short-put", "19500", "--long-put", "19480"]
BUNDLED_GRID = Path(__file__).parents[1] / "exporter" / "spreadwatch" / "data" / "grid_spx.csv"
RECORD = {"id": "imp1", "entry_time": "2026-11-20T15:00:00Z", "dte": 3, "band": "P97", "spread": "put_spread",
          "contracts": 1, "credit": 200, "short_put": 19500, "long_put": 19480, "status": "open"}
CLOSED = {**RECORD, "id": "imp2", "status": "closed", "pnl": 50, "closed_at": "2026-11-21T15:00:00Z"}


# ---- the corpus --------------------------------------------------------------------------------------------------
class Case:
    def __init__(self, name: str, args: list[str], code: int, fragment: str,
                 files: dict[str, bytes] | None = None) -> None:
        self.name, self.args, self.code, self.fragment, self.files = name, args, code, fragment, files or {}


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _grid(cell: str, column: str = "avg_credit") -> bytes:
    header, row = BUNDLED_GRID.read_text().splitlines()[:2]
    cells = row.split(",")
    cells[header.split(",").index(column)] = cell
    return f"{header}\n{','.join(cells)}\n".encode()


BAD_FLOATS = ["nan", "inf", "-inf", "1e308", "-1e308", "1e30"]
NOT_NUMBERS = ["abc", "", "1,5", "0x10", "--"]
BAD_INSTANTS = {
    "0001-01-01T00:00:00Z": "outside the years 1900-2200",
    "0001-01-01T00:00:00+05:00": "outside the years 1900-2200",
    "9999-12-31T23:59:59Z": "outside the years 1900-2200",
    "9999-12-31T23:59:59-05:00": "outside the years 1900-2200",
    "1899-12-31T00:00:00Z": "outside the years 1900-2200",
    "2201-01-01T00:00:00Z": "outside the years 1900-2200",
    "2026-11-24T10:00:00": "has no time zone",
    "yesterday": "not an ISO 8601 instant",
    "2026-13-01T00:00:00Z": "not an ISO 8601 instant",
    "": "not an ISO 8601 instant",
}


def _add_cases() -> Iterator[Case]:
    base = ["positions", "add", "--db", "{d}/book.db"]

    def with_(option: str, value: str) -> list[str]:
        args = list(PUT)
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
        return base + args

    for option in ("--credit", "--risk", "--short-put", "--long-put"):
        for value in BAD_FLOATS:
            yield Case(f"add {option} {value}", with_(option, value), 2, f"{option}: ")
        for value in NOT_NUMBERS:
            yield Case(f"add {option} {value!r}", with_(option, value), 2, f"Invalid value for '{option}'")
    for option in ("--dte", "--contracts"):
        for value in ("10" + "0" * 18, "10" + "0" * 19, str(2**63), "-1", "-10" + "0" * 20):
            yield Case(f"add {option} {value}", with_(option, value), 2, f"{option}: ")
        for value in ("1.5", "abc", "", "1e3", "nan"):
            yield Case(f"add {option} {value!r}", with_(option, value), 2, f"Invalid value for '{option}'")
    for value, fragment in BAD_INSTANTS.items():
        yield Case(f"add --entry-time {value!r}", with_("--entry-time", value), 2, fragment)
    yield Case("add --entry-time in the future", with_("--entry-time", "2030-01-02T15:00:00Z"), 1, "in the future")
    for value, (code, fragment) in {"0001-01-01": (2, "outside the years 1900-2200"),
                                    "9999-12-31": (2, "outside the years 1900-2200"),
                                    "2026-11-28": (1, "not a trading session"),
                                    "2026-11-20": (1, "before the entry session"),
                                    "2026-02-30": (2, "is not a date"), "soon": (2, "is not a date")}.items():
        yield Case(f"add --expiry {value}", with_("--expiry", value), code, f"--expiry: {value}"
                   if code == 1 else fragment)
    for name, value in {"lone surrogate": "\udcff", "escaped bytes": "ok\udce9\udca9", "huge": "x" * 10_001}.items():
        yield Case(f"add --note {name}", with_("--note", value), 2, "--note: ")
    for term in ("--band", "--spread", "--flow-mode"):
        yield Case(f"add {term} nonsense", with_(term, "<!channel>"), 2, f"{term}: ")
    yield Case("add --ticker not configured", with_("--ticker", "<!channel>"), 1, "--ticker: unknown ticker")
    yield Case("add --short-call on a put spread", with_("--short-call", "20000"), 1, "does not apply")
    yield Case("add --db parent is a file", ["positions", "add", "--db", "{d}/afile/book.db", *PUT], 1,
               "a parent of it is a file")
    yield Case("add --db is a directory", ["positions", "add", "--db", "{d}/adir", *PUT], 1, "is a directory")
    yield Case("add --db not a book", ["positions", "add", "--db", "{d}/afile", *PUT], 1, "not a SQLite database")


# A position id: malformed (2) unless it is 1-64 letters, digits, _ - . ; a well-formed one the book lacks: 1.
ID_REFUSALS = {"unknown": (1, "unknown position id 'zzzz'"), "surrogate": (2, "position id: is not valid UTF-8"),
               "empty": (2, "position id: '' is not a usable id"),
               "injection": (2, "position id: \"' OR 1=1 --\" is not a usable id")}


def _book_cases() -> Iterator[Case]:
    for command in (["update", "{id}", "--pnl"], ["close", "{id}", "--pnl"]):
        verb = command[0]
        for value in ("nan", "inf", "-inf", "1e308", "-1e13"):
            yield Case(f"{verb} --pnl {value}", ["positions", *command, value, "--db", "{d}/book.db"], 2, "--pnl: ")
        for value in NOT_NUMBERS[:3]:
            yield Case(f"{verb} --pnl {value!r}", ["positions", *command, value, "--db", "{d}/book.db"], 2,
                       "Invalid value for '--pnl'")
        for name, ref in {"unknown": "zzzz", "surrogate": "\udcff", "empty": "", "injection": "' OR 1=1 --"}.items():
            yield Case(f"{verb} id {name}", ["positions", verb, ref, "--pnl", "5", "--db", "{d}/book.db"],
                       *ID_REFUSALS[name])
        yield Case(f"{verb} --note surrogate", ["positions", *command, "5", "--note", "\udcff", "--db",
                                                 "{d}/book.db"], 2, "--note: ")
        yield Case(f"{verb} on a missing book", ["positions", *command, "5", "--db", "{d}/none.db"], 1,
                   "no such file")
    for name, ref in {"unknown": "zzzz", "surrogate": "\udcff", "empty": "", "injection": "' OR 1=1 --"}.items():
        yield Case(f"history id {name}", ["positions", "history", ref, "--db", "{d}/book.db"], *ID_REFUSALS[name])
    for command in ("list", "summary", "check"):
        yield Case(f"{command} on a text file", ["positions", command, "--db", "{d}/afile"], 1,
                   "not a SQLite database")
        yield Case(f"{command} on a directory", ["positions", command, "--db", "{d}/adir"], 1, "is a directory")
    yield Case("history on a text file", ["positions", "history", "x", "--db", "{d}/afile"], 1,
               "not a SQLite database")


def _scan_and_run_cases() -> Iterator[Case]:
    for option in ("--vix", "--price"):
        for value in ["-5", "0", "-20000", *BAD_FLOATS, *NOT_NUMBERS[:3]]:
            if value == "1e30" and option == "--vix":
                value = "1001"
            yield Case(f"scan {option} {value}", ["scan", option, value], 2, f"Invalid value for '{option}'")
    for option in ("--speed", "--scan-interval"):
        for value in ["nan", "inf", "-inf", "1e300", "0", "-1", "abc", ""]:
            yield Case(f"run {option} {value!r}", ["run", option, value, "--db", "{d}/new.db"], 2,
                       f"Invalid value for '{option}'")
    for value in ("nowhere", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:-1", ":", "[::1]", "127.0.0.1:http"):
        yield Case(f"run --listen {value}", ["run", "--listen", value, "--db", "{d}/new.db"], 2,
                   f"--listen {value!r}: expected HOST:PORT")
    yield Case("run --listen unresolvable", ["run", "--listen", "no-such-host.invalid:9877", "--db", "{d}/new.db"],
               1, "--listen no-such-host.invalid:9877: cannot resolve")
    yield Case("run --listen port in use", ["run", "--listen", "127.0.0.1:{busy}", "--db", "{d}/new.db"], 1,
               "--listen 127.0.0.1:{busy}: cannot listen")
    for command in (["status", "--at"], ["scan", "--at"], ["run", "--start"]):
        for value in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-24T10:00:00", "nope"):
            yield Case(f"{command[0]} {command[1]} {value}", [*command, value, "--db", "{d}/new.db"], 2, "instant")
    for value, code, fragment in (("bloomberg", 2, "unknown --source 'bloomberg'"),
                                  ("replay:", 2, "--source replay:FILE needs a file"),
                                  ("replay:{d}/none.csv", 1, "replay file not found")):
        for command in ("status", "scan"):
            yield Case(f"{command} --source {value}", [command, "--source", value, "--db", "{d}/new.db"], code,
                       fragment)
    for value in ("-1", "0", "abc", str(10**20)):
        yield Case(f"grid build --days {value}", ["grid", "build", "--days", value, "--out", "{d}/g.csv"], 2,
                   "Invalid value for '--days'")
    grid_build = ["grid", "build", "--ticker", "SPX", "--out", "{d}/g.csv"]
    for extra, code, fragment in ((["--source", "ftp:x"], 2, "unknown --source 'ftp:x'"),
                                  (["--source", "csv:"], 2, "--source csv:FILE needs a file"),
                                  (["--bands", "P42"], 2, "unknown band 'P42'"),
                                  (["--dte", "-1"], 2, "--dte"),
                                  (["--widths", "0"], 2, "--widths"),
                                  (["--widths", "7"], 1, "not a multiple of SPX's strike increment"),
                                  (["--source", "csv:{d}/none.csv"], 1, "history file not found")):
        yield Case(f"grid build {' '.join(extra)}", [*grid_build, *extra], code, fragment)
    for option in ("--start", "--end"):
        yield Case(f"grid build {option} bad", ["grid", "build", option, "2026-02-30", "--out", "{d}/g.csv"], 2,
                   "is not a date")


CONFIGS: dict[str, tuple[bytes, str]] = {
    "invalid UTF-8": (b"watch: [\xff\xfe]\n", "not UTF-8"),
    "deeply nested list": (b"watch: " + b"[" * 100_000 + b"\n", ""),
    "deeply nested map": (b"a:\n" + b"".join(b" " * i + b"b:\n" for i in range(1, 3000)), ""),
    "not a mapping": (b"- 1\n- 2\n", "top level must be a mapping"),
    "unknown key": (b"nonsense: 1\n", "nonsense"),
    "market.stale_after_seconds huge": (b"market:\n  stale_after_seconds: 1000000000000000000000\n", "ten years"),
    "market.stale_after_seconds 10 years and a second": (b"market:\n  stale_after_seconds: 315360001\n", "ten years"),
    "market.stale_after_seconds negative": (b"market:\n  stale_after_seconds: -1\n", "must be"),
    "market.stale_after_seconds nan": (b"market:\n  stale_after_seconds: .nan\n", "whole number"),
    "exits.pnl_stale_after_minutes huge": (b"exits:\n  pnl_stale_after_minutes: 100000000000000000000\n",
                                           "ten years"),
    "exits.pnl_stale_after_minutes 0": (b"exits:\n  pnl_stale_after_minutes: 0\n", "must be > 0"),
    "market.band_window_sessions huge": (b"market:\n  band_window_sessions: 1000000000\n", "largest accepted"),
    "market.iv_window_sessions huge": (b"market:\n  iv_window_sessions: 99999999999999999999\n", "largest accepted"),
    "market.volume_window_sessions huge": (b"market:\n  volume_window_sessions: 20001\n", "largest accepted"),
    "market.flow_0dte_minutes huge": (b"market:\n  flow_0dte_minutes: 99999999999\n", "ten years"),
    "intervals.scan_seconds huge": (b"intervals:\n  scan_seconds: 99999999999999\n", "ten years"),
    "intervals.scan_seconds float": (b"intervals:\n  scan_seconds: 1.0e30\n", "whole number"),
    "intervals.market_data_seconds 0": (b"intervals:\n  market_data_seconds: 0\n", "must be > 0"),
    "hours.entry_tolerance_minutes huge": (b"hours:\n  entry_tolerance_minutes: 9999999999999\n", "ten years"),
    "exits.time_exit_dte huge": (b"exits:\n  time_exit_dte: 99999999\n", "largest accepted"),
    "exits.stop_loss_mult huge": (b"exits:\n  stop_loss_mult: 1.0e300\n", "largest accepted"),
    "exits.stop_loss_mult inf": (b"exits:\n  stop_loss_mult: .inf\n", "finite"),
    "risk.max_total_risk huge": (b"risk:\n  max_total_risk: 1.0e30\n", "largest accepted"),
    "risk.max_positions huge": (b"risk:\n  max_positions: 100000000000000000000000\n", "largest accepted"),
    "scan.top_n huge": (b"scan:\n  top_n: 100000000000000000000000\n", "largest accepted"),
    "logging.file_max_bytes huge": (b"logging:\n  file_max_bytes: 100000000000000000000000\n", "largest accepted"),
    "regime boundary nan": (b"regime:\n  hysteresis: .nan\n", "finite"),
    "binary garbage": (bytes(range(256)), ""),
    "yaml alias bomb": (b"a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                        b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n", "a"),
    "python object tag": (b"watch: !!python/object/apply:os.system ['true']\n", "python/object"),
}


def _config_cases() -> Iterator[Case]:
    for name, (content, fragment) in CONFIGS.items():
        files = {"bad.yaml": content}
        yield Case(f"config check: {name}", ["config", "check", "{d}/bad.yaml"], 1, fragment, files)
        yield Case(f"positions list with config: {name}", ["--config", "{d}/bad.yaml", "positions", "list"], 1,
                   fragment, files)
        yield Case(f"status with config: {name}", ["status", "--config", "{d}/bad.yaml"], 1, fragment, files)
    yield Case("config check: missing file", ["config", "check", "{d}/none.yaml"], 1, "not found")
    yield Case("config check: a directory", ["config", "check", "{d}/adir"], 1, "is a directory")


IMPORTS: dict[str, tuple[object | bytes, str]] = {
    "deep JSON": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "deep JSON unclosed": (b"[" * 100_000, ""),
    "invalid UTF-8": (b'[{"id": "\xff"}]', "cannot read"),
    "not JSON": (b"positions: []", "not valid JSON"),
    "a number": (b"42", "expected a list"),
    "a list of numbers": (b"[1, 2]", "expected an object"),
    "dte 1e20": ([{**RECORD, "dte": 10**20}], "dte: "),
    "dte float": ([{**RECORD, "dte": 1.5}], "dte: "),
    "dte negative": ([{**RECORD, "dte": -1}], "dte: "),
    "contracts 1e19": ([{**RECORD, "contracts": 10**19}], "contracts: "),
    "contracts 0": ([{**RECORD, "contracts": 0}], "contracts: "),
    "credit nan": (b'[{"id": "x", "entry_time": "2026-11-20T15:00:00Z", "dte": 3, "band": "P97", "spread": '
                   b'"put_spread", "contracts": 1, "credit": NaN, "short_put": 19500, "long_put": 19480}]', "credit: "),
    "credit Infinity": (b'[{"id": "x", "entry_time": "2026-11-20T15:00:00Z", "dte": 3, "band": "P97", "spread": '
                        b'"put_spread", "contracts": 1, "credit": Infinity, "short_put": 19500, "long_put": 19480}]',
                        "credit: "),
    "credit 1e308": ([{**RECORD, "credit": 1e308}], "credit: "),
    "credit text": ([{**RECORD, "credit": "lots"}], "credit: "),
    "credit negative": ([{**RECORD, "credit": -200}], "credit: "),
    "strike 1e30": ([{**RECORD, "short_put": 1e30}], "short-put: "),
    "strike negative": ([{**RECORD, "long_put": -19480}], "long-put: "),
    "risk 1e300": ([{**RECORD, "risk": 1e300}], "risk: "),
    "pnl 1e300": ([{**CLOSED, "pnl": 1e300}], "pnl: "),
    "entry 0001": ([{**RECORD, "entry_time": "0001-01-01T00:00:00Z"}], "outside the years 1900-2200"),
    "entry 9999": ([{**RECORD, "entry_time": "9999-12-31T00:00:00"}], "outside the years 1900-2200"),
    "entry not a time": ([{**RECORD, "entry_time": "soon"}], "entry_time: "),
    "entry a number": ([{**RECORD, "entry_time": 12}], "entry_time: "),
    "entry in the future": ([{**RECORD, "entry_time": "2031-01-02T15:00:00Z"}], "in the future"),
    "expiry before entry": ([{**RECORD, "expiry": "2026-11-18"}], "before the entry"),
    "expiry 0001": ([{**RECORD, "expiry": "0001-01-03"}], "expiry: "),
    "expiry 9999": ([{**RECORD, "expiry": "9999-12-31"}], "expiry: "),
    "expiry not a session": ([{**RECORD, "expiry": "2026-11-28"}], "not a trading session"),
    "close before entry": ([{**CLOSED, "closed_at": "2026-11-19T15:00:00Z"}], "closed_at: "),
    "close in the future": ([{**CLOSED, "closed_at": "2031-01-02T15:00:00Z"}], "closed_at: "),
    "P&L update in 2031": ([{**RECORD, "pnl": 10, "pnl_updated_at": "2031-01-02T15:00:00Z"}], "in the future"),
    "P&L update before entry": ([{**RECORD, "pnl": 10, "pnl_updated_at": "2026-11-01T15:00:00Z"}],
                                "before the entry"),
    "id lone surrogate": (b'[{"id": "\\ud800", "entry_time": "2026-11-20T15:00:00Z", "dte": 3, "band": "P97", '
                          b'"spread": "put_spread", "contracts": 1, "credit": 200, "short_put": 19500, '
                          b'"long_put": 19480}]', "id: "),
    "note lone surrogate": (b'[{"id": "x", "note": "\\udcff", "entry_time": "2026-11-20T15:00:00Z", "dte": 3, '
                            b'"band": "P97", "spread": "put_spread", "contracts": 1, "credit": 200, '
                            b'"short_put": 19500, "long_put": 19480}]', "note: "),
    "id with spaces": ([{**RECORD, "id": "a b"}], "not a usable id"),
    "id twice": ([RECORD, RECORD], "appears twice"),
    "id already in the book": ([{**RECORD, "id": "{id}"}], "already in the book"),
    "unknown key": ([{**RECORD, "evil": 1}], "unknown key"),
    "status weird": ([{**RECORD, "status": "pending"}], "status: "),
    "band weird": ([{**RECORD, "band": "<!channel>"}], "band: "),
    "ticker weird": ([{**RECORD, "ticker": "<https://evil.example|dashboard>"}], "ticker: "),
    "missing credit": ([{k: v for k, v in RECORD.items() if k != "credit"}], "credit: missing"),
    "good then bad": ([RECORD, {**CLOSED, "closed_at": "2026-11-19T15:00:00Z"}], "positions[1]"),
}


def _import_cases() -> Iterator[Case]:
    for name, (content, fragment) in IMPORTS.items():
        data = content if isinstance(content, bytes) else _json(content)
        yield Case(f"import: {name}", ["positions", "import", "{d}/in.json", "--db", "{d}/book.db"], 1, fragment,
                   {"in.json": data})
    yield Case("import: missing file", ["positions", "import", "{d}/none.json", "--db", "{d}/book.db"], 1,
               "no such file")
    yield Case("import: a directory", ["positions", "import", "{d}/adir", "--db", "{d}/book.db"], 1,
               "is a directory")


GRIDS: dict[str, tuple[bytes, str]] = {
    "cell 1e30": (_grid("1e30"), "beyond the largest accepted"),
    "cell -1e30": (_grid("-1e30"), "beyond the largest accepted"),
    "cell inf": (_grid("inf"), "avg_credit"),
    "cell nan text": (_grid("abc"), "avg_credit"),
    "risk 1e300": (_grid("1e300", "avg_max_risk"), "beyond the largest accepted"),
    "trades 1e30": (_grid("1e30", "n_trades"), "beyond the largest accepted"),
    "dte 1e9": (_grid("1000000000", "dte"), "dte"),
    "dte negative": (_grid("-1", "dte"), "dte"),
    "dte fractional": (_grid("1.5", "dte"), "dte"),
    "width 0": (_grid("0", "spread_width"), "spread_width"),
    "band weird": (_grid("<!channel>", "band"), "band"),
    "time weird": (_grid("25:99", "entry_time_et"), "entry_time_et"),
    "empty": (b"", "not a CSV grid"),
    "header only": (BUNDLED_GRID.read_text().splitlines()[0].encode() + b"\n", "no rows"),
    "unknown columns": (b"a,b\n1,2\n", "not a known grid format"),
    "invalid UTF-8": (b"\xff\xfe\xfa,b\n1,2\n", "grid"),
}


def _grid_cases() -> Iterator[Case]:
    for name, (content, fragment) in GRIDS.items():
        files = {"g.csv": content}
        yield Case(f"grid show: {name}", ["grid", "show", "{d}/g.csv"], 1, fragment, files)
        yield Case(f"scan --grid: {name}", ["scan", "--grid", "{d}/g.csv", "--db", "{d}/new.db"], 1, fragment, files)
    yield Case("grid show --top 0", ["grid", "show", str(BUNDLED_GRID), "--top", "0"], 2, "--top")
    yield Case("grid show --top huge", ["grid", "show", str(BUNDLED_GRID), "--min-trades", "-1"], 2, "--min-trades")


def _unknown_cases() -> Iterator[Case]:
    for args in (["nonsense"], ["positions", "nonsense"], ["positions", "add", "--nonsense"], ["scan", "--vix"],
                 ["run", "--speed"], ["positions", "update"], ["positions", "add"], ["--config"],
                 ["status", "--trend", "sideways-ish"], ["scan", "--flow", "sideways"]):
        yield Case(f"usage: {' '.join(args)}", args, 2, "Error: ")


CORPUS = [*_add_cases(), *_book_cases(), *_scan_and_run_cases(), *_config_cases(), *_import_cases(),
          *_grid_cases(), *_unknown_cases()]


def test_the_corpus_is_large_and_names_are_unique():
    assert len(CORPUS) >= 250
    assert len({case.name for case in CORPUS}) == len(CORPUS)


# ---- running a case ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A directory with a book holding one position, a text file and an empty directory."""
    root = tmp_path_factory.mktemp("template")
    result = CliRunner(env={"SPREADWATCH_NOW": "2026-11-24T15:30:00Z", "SPREADWATCH_CONFIG": ""}).invoke(
        cli, ["positions", "add", "--db", str(root / "book.db"), "--json", *PUT])
    assert result.exit_code == 0, result.output
    (root / "afile").write_text("not a book\n")
    (root / "adir").mkdir()
    return root, json.loads(result.stdout)["id"]


def fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def case_dir(template: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    root = tmp_path / "case"
    shutil.copytree(template[0], root)
    monkeypatch.chdir(root)  # the default book and log paths resolve here: a stray file would show
    monkeypatch.delenv("SPREADWATCH_DB", raising=False)
    monkeypatch.setenv("SPREADWATCH_CONFIG", "")
    return root, template[1]


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def _fill(text: str, root: Path, position_id: str, busy: int) -> str:
    return text.replace("{d}", str(root)).replace("{id}", position_id).replace("{busy}", str(busy))


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_bad_input_is_one_line_and_writes_nothing(case: Case, case_dir: tuple[Path, str], busy_port: int):
    root, position_id = case_dir
    for name, content in case.files.items():
        (root / name).write_bytes(content.replace(b"{id}", position_id.encode()))
    before = fingerprint(root)
    result = CliRunner().invoke(cli, [_fill(arg, root, position_id, busy_port) for arg in case.args])
    lines = result.stderr.splitlines()
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == case.code, (result.exit_code, result.stderr, result.stdout)
    assert len([line for line in lines if not line.startswith(("(no position book", "warning:"))]) == 1, lines
    assert _fill(case.fragment, root, position_id, busy_port) in result.stderr, result.stderr
    assert fingerprint(root) == before


# ---- real processes: the exit codes a shell sees -----------------------------------------------------------------
@pytest.mark.parametrize("args, code, fragment", [
    (["scan", "--vix", "nan"], 2, "Invalid value for '--vix'"),
    (["positions", "add", "--db", "{d}/book.db", *PUT[:-2], "--long-put", "1e308"], 2, "--long-put: "),
    (["positions", "add", "--db", "{d}/book.db", *PUT, "--note", b"\xff\xfe".decode("utf-8", "surrogateescape")],
     2, "--note: is not valid UTF-8"),
    (["positions", "history", b"\xff".decode("utf-8", "surrogateescape"), "--db", "{d}/book.db"], 2,
     "position id: is not valid UTF-8"),
    (["positions", "history", "zzzz", "--db", "{d}/book.db"], 1, "unknown position id 'zzzz'"),
    (["run", "--listen", "127.0.0.1:{busy}", "--db", "{d}/new.db"], 1, "cannot listen"),
])
def test_real_process_exit_codes(args: list[str], code: int, fragment: str, case_dir: tuple[Path, str],
                                 busy_port: int):
    root, position_id = case_dir
    before = fingerprint(root)
    argv = [_fill(arg, root, position_id, busy_port) for arg in args]
    done = subprocess.run([sys.executable, "-m", "spreadwatch", *argv], capture_output=True, timeout=120,
                          cwd=root, env={"PATH": "/usr/bin:/bin", "SPREADWATCH_NOW": "2026-11-24T15:30:00Z"})
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == code, stderr
    assert len(stderr.splitlines()) == 1 and fragment in stderr and "Traceback" not in stderr, stderr
    assert fingerprint(root) == before
