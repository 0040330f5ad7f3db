"""The start-up path of `positions add/update/close/list/summary` (edges/cli_fast.py) against click's: for every
command line, valid or not, the same exit code, stdout, stderr and resulting book; the valid ones (and the errors
the library itself finds) run without click, the rest go to click; and the fast path imports no click, pandas,
numpy, exchange_calendars or sqlite-utils."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from spreadwatch.domain.positions import PositionInput, validate
from spreadwatch.edges import cli_fast
from spreadwatch.edges.cli import cli
from spreadwatch.edges.store import PositionBook

PUT = ["--dte", "3", "--band", "P97", "--spread", "put_spread", "--contracts", "1", "--credit", "200",
       "--short-put", "19500", "--long-put", "19480", "--ticker", "NDX"]
AT = "2019-01-02T14:35:00Z"  # an instant of the bundled replay day
CONFIG = "watch: [NDX]\nrisk:\n  max_open_positions: 2\nexits:\n  profit_target_pct: 0.2\n"

# (argv with {db}, {dir}, {config} and {missing} filled in, whether the fast path runs it)
CASES: list[tuple[list[str], bool]] = [
    # valid command lines: the fast path
    (["positions", "add", *PUT, "--db", "{db}"], True),
    (["positions", "add", *PUT, "--json", "--note", "two words", "--risk", "1800", "--db={db}"], True),
    (["positions", "add", "--db", "{db}", "--flow-mode", "with_flow", "--dte=1", "--band", "P95", "--spread",
      "iron_condor", "--contracts", "2", "--credit", "300", "--short-put", "19000", "--long-put", "18950",
      "--short-call", "21000", "--long-call", "21050", "--ticker", "NDX", "--entry-time", "2026-11-24T15:00:00Z"],
     True),
    (["positions", "add", *PUT, "--expiry", "2026-12-31", "--db", "{db}"], True),  # a warning: not --dte 3
    (["--config", "{config}", "positions", "add", *PUT, "--db", "{db}"], True),  # a risk-limit warning
    (["positions", "add", *PUT, "--db", "{db}", "--config", "{config}"], True),
    (["positions", "update", "aa11", "--pnl", "150", "--db", "{db}"], True),
    (["positions", "update", "--pnl=-25", "aa11", "--db", "{db}", "--json", "--note", "--json"], True),
    (["--config={config}", "positions", "update", "aa11", "--pnl", "50", "--db", "{db}"], True),
    (["positions", "close", "aa22", "--pnl", "40", "--db", "{db}"], True),
    (["positions", "close", "aa22", "--pnl", "40", "--json", "--db", "{db}"], True),
    (["positions", "list", "--db", "{db}"], True),
    (["positions", "list", "--include-closed", "--db", "{db}"], True),
    (["positions", "list", "--json", "--db", "{db}"], True),
    (["positions", "list", "--db", "{missing}"], True),
    (["positions", "summary", "--db", "{db}"], True),
    (["positions", "summary", "--json", "--db", "{db}"], True),
    # errors the library finds: the fast path, the same one line and exit code
    (["positions", "update", "aa", "--pnl", "5", "--db", "{db}"], True),  # ambiguous prefix
    (["positions", "update", "zz99", "--pnl", "5", "--db", "{db}"], True),  # unknown id
    (["positions", "update", "cc33", "--pnl", "5", "--db", "{db}"], True),  # already closed
    (["positions", "close", "aa11", "--pnl", "nan", "--db", "{db}"], True),  # malformed: exit 2
    (["positions", "update", "aa11", "--pnl", "1", "--db", "{missing}"], True),  # no book
    (["positions", "add", *PUT[:-1], "XXX", "--db", "{db}"], True),  # unknown ticker
    (["positions", "add", *PUT[:7], "0", *PUT[8:], "--db", "{db}"], True),  # no contracts
    (["positions", "add", *PUT, "--expiry", "2026-11-26", "--db", "{db}"], True),  # Thanksgiving
    (["positions", "add", *PUT, "--expiry", "someday", "--db", "{db}"], True),
    (["positions", "add", *PUT, "--note", "bad\udcff", "--db", "{db}"], True),
    (["positions", "list", "--db", "{corrupt}"], True),
    (["positions", "add", *PUT, "--config", "{bad_config}", "--db", "{db}"], True),
    # status and scan on the bundled replay day
    (["status", "--at", AT], True),
    (["status", "--at", AT, "--json", "--trend", "down", "--db", "{db}"], True),
    (["--config", "{config}", "status", "--ticker", "NDX", "--at", AT], True),  # NDX is not in the replay
    (["status", "--at", "yesterday"], True),  # malformed: exit 2
    (["scan", "--at", AT, "--vix", "13.5", "--flow", "up", "--price", "2500", "--db", "{db}"], True),
    (["scan", "--at", AT, "--all", "--json", "--trend=sideways"], True),
    (["scan", "--at", AT, "--grid", "{missing}"], True),
    (["scan", "--vix", "-1", "--at", AT], False),  # the level's check refuses it: click says so
    (["scan", "--flow", "sideways", "--at", AT], False),  # not a choice
    (["status", "--trend", "Up", "--at", AT], False),
    (["scan", "--at", AT, "--grid", "{dir}"], False),
    (["status", "--help"], False),
    (["status", "extra", "--at", AT], False),
    # anything else: click
    (["positions", "list", "--help"], False),
    (["positions", "summary", "-h", "--db", "{db}"], False),
    (["positions", "add", "--db", "{db}"], False),  # required options missing
    (["positions", "add", *PUT[2:], "--db", "{db}"], False),  # --dte missing
    (["positions", "add", *PUT, "--dte", "4", "--db", "{db}"], False),  # repeated
    (["positions", "add", *PUT[:1], "three", *PUT[2:], "--db", "{db}"], False),  # not an integer
    (["positions", "update", "aa11", "--pnl", "lots", "--db", "{db}"], False),
    (["positions", "update", "aa11", "--db", "{db}"], False),
    (["positions", "update", "--pnl", "1", "--db", "{db}"], False),  # no id
    (["positions", "update", "aa11", "aa22", "--pnl", "1", "--db", "{db}"], False),
    (["positions", "update", "-1", "--pnl", "1", "--db", "{db}"], False),  # an id that looks like an option
    (["positions", "update", "--", "aa11", "--pnl", "1", "--db", "{db}"], False),
    (["positions", "update", "aa11", "--pnl"], False),  # no value
    (["positions", "list", "--include-closed=yes", "--db", "{db}"], False),
    (["positions", "list", "--bogus", "--db", "{db}"], False),
    (["positions", "list", "--db", "{dir}"], False),  # a directory
    (["--config", "{dir}", "positions", "list", "--db", "{db}"], False),
    (["positions", "--config", "{config}", "list", "--db", "{db}"], False),
    (["positions", "history", "aa11", "--db", "{db}"], False),
    (["positions"], False),
    (["--version"], False),
]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPREADWATCH_DB", raising=False)
    monkeypatch.setenv("SPREADWATCH_CONFIG", "")
    monkeypatch.setattr("secrets.token_hex", lambda n: "ab12cd")  # the same new id on both paths


def make_book(path: Path) -> None:
    """Open positions aa11 and aa22 (a shared prefix) and a closed one, cc33."""
    entry, _ = validate(PositionInput(ticker="NDX", spread="put_spread", band="P97", flow_mode="neutral", dte=3,
                                      contracts=1, credit=200.0, risk=None, short_put=19500.0, long_put=19480.0),
                        tickers=("NDX",))
    from datetime import datetime

    now = datetime.fromisoformat(os.environ["SPREADWATCH_NOW"].replace("Z", "+00:00"))
    state = {"entry_time": now - timedelta(days=1), "expiry": date(2027, 6, 18), "pnl": 0.0, "status": "open",
             "pnl_updated_at": now, "closed_at": None}
    with PositionBook(path) as book:
        book.import_positions([("aa11", entry, state), ("aa22", entry, state),
                               ("cc33", entry, {**state, "status": "closed", "pnl": 100.0, "closed_at": now})],
                              now=now)


def contents(directory: Path) -> tuple:
    """Every row of the book (when it is one) and the names of the files in its directory."""
    path = directory / "book.db"
    rows: object = None
    if path.exists():
        conn = sqlite3.connect(path)
        try:
            rows = [conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in ("positions", "history")]
        finally:
            conn.close()
    return rows, sorted(p.name for p in directory.iterdir())


def outcome(entry: object, argv: list[str], base: Path, where: Path, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> tuple:
    """(exit code, stdout, stderr, book) of one command line run by `entry` on a fresh copy of the book."""
    shutil.copytree(base, where)
    names = {"db": where / "book.db", "dir": where / "adir", "config": where / "config.yml",
             "bad_config": where / "bad.yml", "missing": where / "missing.db", "corrupt": where / "corrupt.db"}
    filled = [part.format(**names) if "{" in part else part for part in argv]
    monkeypatch.setattr(sys, "argv", ["spreadwatch", *filled])
    capsys.readouterr()
    try:
        entry()  # type: ignore[operator]
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    book = contents(where)
    return code, out.replace(str(where), "<dir>"), err.replace(str(where), "<dir>"), book


@pytest.mark.parametrize(("argv", "fast"), CASES, ids=[" ".join(argv)[:60] for argv, _ in CASES])
def test_the_fast_path_answers_as_click_does(argv: list[str], fast: bool, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    base = tmp_path / "base"
    base.mkdir()
    make_book(base / "book.db")
    (base / "adir").mkdir()
    (base / "config.yml").write_text(CONFIG)
    (base / "bad.yml").write_text("risk: {max_open_positions: lots}\n")
    (base / "corrupt.db").write_bytes(b"not a database at all, just text")
    fast_result = outcome(cli_fast.main, argv, base, tmp_path / "fast", capsys, monkeypatch)
    assert (cli_fast.parse(sys.argv[1:]) is not None) is fast  # sys.argv: the fast run's command line
    click_result = outcome(lambda: cli.main(prog_name="spreadwatch"), argv, base, tmp_path / "click", capsys,
                           monkeypatch)
    assert fast_result == click_result
    if fast and "--help" not in argv:
        assert fast_result[2].count("\n") <= 2  # one line per warning or error, no usage block


def test_valid_runs_change_the_book_and_errors_leave_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch):
    """The matrix compares the two paths; this checks that what they agree on is the right thing."""
    base = tmp_path / "base"
    base.mkdir()
    make_book(base / "book.db")
    before = contents(base)
    code, out, _, after = outcome(cli_fast.main, ["positions", "close", "aa22", "--pnl", "40", "--db", "{db}"],
                                  base, tmp_path / "ok", capsys, monkeypatch)
    assert code == 0 and out.startswith("Closed aa22: P&L +$0.00 -> +$40.00 (realized)")
    assert after != before and len(after[0][1]) == len(before[0][1]) + 1  # one more history row
    code, _, err, after = outcome(cli_fast.main, ["positions", "close", "aa11", "--pnl", "inf", "--db", "{db}"],
                                  base, tmp_path / "bad", capsys, monkeypatch)
    assert code == 2 and err.startswith("Error: --pnl: ") and after[0] == before[0]


HEAVY = ("click", "pandas", "numpy", "exchange_calendars", "sqlite_utils", "yfinance", "scipy", "matplotlib")
PROBE = """
import atexit, sys
def report():
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(",")))
    print("HEAVY=" + ",".join(heavy), file=sys.stderr)
atexit.register(report)
sys.argv = ["spreadwatch", *sys.argv[2:]]
from spreadwatch.edges.cli_fast import main
main()
"""


@pytest.mark.parametrize("args", [[*PUT, "--json"], ["update", "aa11", "--pnl", "-25"], ["close", "aa22", "--pnl", "40"],
                                  ["list", "--include-closed", "--json"], ["summary"]], ids=lambda a: a[0])
def test_the_fast_path_imports_no_click_pandas_calendar_or_sqlite_utils(args: list[str], tmp_path: Path):
    make_book(tmp_path / "book.db")
    command = ["add", *args] if args[0].startswith("--") else args
    result = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), "positions", *command,
                             "--db", str(tmp_path / "book.db")], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SPREADWATCH_CONFIG": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert result.stderr.strip().splitlines()[-1] == "HEAVY="


@pytest.mark.parametrize("columns", ["30", "60", "79", "100", "", "0", "wide"])
def test_help_is_as_wide_as_click_would_make_it(columns: str, monkeypatch: pytest.MonkeyPatch):
    # The console script tells click the help width itself (so click need not import shutil); it must be the
    # width click works out from the terminal and COLUMNS.
    import click.formatting

    from spreadwatch.edges.cli import help_width

    monkeypatch.setenv("COLUMNS", columns)
    assert help_width() == click.formatting.HelpFormatter().width


@pytest.mark.parametrize("args", [["status", "--at", AT], ["scan", "--at", AT, "--vix", "13.5", "--flow", "up",
                                                          "--price", "2500"]], ids=lambda a: a[0])
def test_status_and_scan_start_without_click(args: list[str]):
    result = subprocess.run([sys.executable, "-c", PROBE, "click,exchange_calendars,yfinance", *args],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "SPREADWATCH_CONFIG": ""})
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "HEAVY="
    # the answer itself: the replay's instant, and (scan) the opportunities it found there
    assert "(2019-01-02T14:35:00Z)" in result.stdout.splitlines()[0]
    if args[0] == "scan":
        assert "configs pass the filters" in result.stdout
