"""`spreadwatch positions ...`: the original's flags, table/JSON output, exit rules and limit warnings from the
config, one-line errors that write nothing, where the book lives, expiry on the XNYS calendar, import of the
original positions.json, and the light read path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from spreadwatch.domain.positions import PositionInput, validate
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.edges.cli import cli
from spreadwatch.edges.store import PositionBook

DATA = Path(__file__).parent / "data"
# The documented `positions list --json` keys (docs/positions.md), in this order; the book adds pnl_updated_at and closed_at after them.
LIST_KEYS = ["id", "ticker", "spread", "band", "flow_mode", "dte", "contracts", "entry_time", "expiry", "credit",
             "risk", "pnl", "status", "short_put", "long_put", "short_call", "long_call", "note"]
EXTRA_KEYS = ["pnl_updated_at", "closed_at"]
SUMMARY_KEYS = ["total_count", "open_count", "closed_count", "total_risk", "unrealized_pnl", "realized_pnl",
                "total_pnl"]
CONDOR = ["--dte", "3", "--band", "P98", "--spread", "iron_condor", "--flow-mode", "with_flow", "--contracts", "2",
          "--credit", "285", "--short-call", "20500", "--long-call", "20600", "--short-put", "19500",
          "--long-put", "19400"]
PUT = ["--dte", "3", "--band", "P97", "--spread", "put_spread", "--contracts", "1", "--credit", "200",
       "--short-put", "19500", "--long-put", "19480"]  # width 20: risk 20 x 100 x 1 - 200 = 1,800


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # the default book is data/spreadwatch.db under the working directory
    monkeypatch.delenv("SPREADWATCH_DB", raising=False)
    monkeypatch.setenv("SPREADWATCH_CONFIG", "")


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "book.db")


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def ok(*args: str):
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def add(db: str, *args: str) -> str:
    return json.loads(ok("positions", "add", "--db", db, "--json", *args).stdout)["id"]


def listed(db: str, *args: str) -> list[dict]:
    return json.loads(ok("positions", "list", "--db", db, "--json", *args).stdout)


def pin_clock(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    """The CLI's "now" (SPREADWATCH_NOW; every test has one, the suite's PINNED_NOW unless it sets its own)."""
    monkeypatch.setenv("SPREADWATCH_NOW", when)


def pinned_instant() -> datetime:
    return datetime.fromisoformat(os.environ["SPREADWATCH_NOW"].replace("Z", "+00:00"))


# ---- the original's commands and flags -------------------------------------------------------------------------
def test_add_with_the_originals_flags(db: str):
    # The original's example risk disagrees with the strikes: refused, with the computed value, nothing written.
    refused = run("positions", "add", "--db", db, "--ticker", "NDX", *CONDOR, "--risk", "1715")
    assert refused.exit_code == 1 and not Path(db).exists()
    assert refused.stderr == ("Error: --risk $1,715.00 disagrees with the strikes: width x 100 x contracts - credit "
                              "= $19,715.00; leave --risk out to store the computed value\n")
    result = ok("positions", "add", "--db", db, "--ticker", "NDX", *CONDOR, "--risk", "19715", "--note",
                "Entry from 07:30 PT alert")
    assert result.stdout.startswith("Added ")
    assert ": NDX 3DTE P98 IRON_CONDOR x2 | Credit:$285.00 Risk:$19,715.00 | 19400/19500P 20500/20600C | " \
        "expires " in result.stdout
    [p] = listed(db)
    assert p["risk"] == 19715.0 and p["note"] == "Entry from 07:30 PT alert" and p["flow_mode"] == "with_flow"


def test_the_originals_put_spread_example_and_an_omitted_risk(db: str):
    ok("positions", "add", "--db", db, "--dte", "5", "--band", "P97", "--spread", "put_spread", "--contracts", "3",
       "--credit", "150.00", "--short-put", "19800", "--long-put", "19700")
    [p] = listed(db)
    assert p["risk"] == 100 * 100 * 3 - 150 and p["flow_mode"] == "neutral" and p["ticker"] == "SPX"  # first watched
    assert p["short_call"] is None and p["long_call"] is None


def test_list_json_has_the_design_keys(db: str):
    add(db, *PUT, "--ticker", "SPX", "--note", "n")
    [p] = listed(db)
    assert list(p) == LIST_KEYS + EXTRA_KEYS
    assert p["status"] == "open" and p["pnl"] == 0.0 and p["closed_at"] is None and p["ticker"] == "SPX"
    assert p["short_call"] is None and p["long_call"] is None  # null where a leg does not apply
    date.fromisoformat(p["expiry"])
    assert datetime.fromisoformat(p["entry_time"]).tzinfo is not None


def test_list_shows_open_positions_and_include_closed_adds_the_rest(db: str):
    a, b = add(db, *PUT), add(db, *CONDOR)
    ok("positions", "close", a, "--db", db, "--pnl", "20")
    assert [p["id"] for p in listed(db)] == [b]
    assert {p["id"]: p["status"] for p in listed(db, "--include-closed")} == {a: "closed", b: "open"}
    table = ok("positions", "list", "--db", db).stdout
    assert b in table and a not in table
    assert table.splitlines()[0].split() == ["ID", "Ticker", "Spread", "Band", "DTE", "Qty", "Strikes", "Credit",
                                             "Risk", "P&L", "Expiry", "Status"]
    assert "19400/19500P 20500/20600C" in table and "$19,715.00" in table
    table = ok("positions", "list", "--db", db, "--include-closed").stdout
    assert a in table and "+$20.00" in table and "closed" in table


def test_empty_and_missing_books(db: str, tmp_path: Path):
    result = ok("positions", "list", "--db", db)
    assert result.stdout == "No open positions.\n" and "no position book at" in result.stderr
    assert json.loads(ok("positions", "list", "--db", db, "--json").stdout) == []
    assert json.loads(ok("positions", "summary", "--db", db, "--json").stdout)["total_count"] == 0
    assert not Path(db).exists()  # reading never creates the book


def test_summary_is_the_originals_portfolio_summary(db: str):
    opened = [add(db, *PUT, "--risk", "1800") for _ in range(3)]
    for position_id, pnl in zip(opened, ("100", "100", "15"), strict=True):
        ok("positions", "update", position_id, "--db", db, "--pnl", pnl)
    for pnl in ("1000", "840"):
        ok("positions", "close", add(db, *PUT), "--db", db, "--pnl", pnl)
    assert ok("positions", "summary", "--db", db).stdout == (
        "PORTFOLIO SUMMARY\n"
        "===================\n"
        "Positions:\n"
        "  Total: 5\n"
        "  Open: 3\n"
        "  Closed: 2\n"
        "\n"
        "Capital:\n"
        "  Total Risk: $5,400.00\n"
        "\n"
        "P&L:\n"
        "  Unrealized: +$215.00\n"
        "  Realized: +$1,840.00\n"
        "  Total: +$2,055.00\n"
    )
    data = json.loads(ok("positions", "summary", "--db", db, "--json").stdout)
    assert list(data) == SUMMARY_KEYS
    assert data == {"total_count": 5, "open_count": 3, "closed_count": 2, "total_risk": 5400.0,
                    "unrealized_pnl": 215.0, "realized_pnl": 1840.0, "total_pnl": 2055.0}


def test_history_shows_every_change(db: str):
    position_id = add(db, *PUT, "--note", "opened")
    ok("positions", "update", position_id[:4], "--db", db, "--pnl", "-50", "--note", "gap down")
    ok("positions", "close", position_id[:4], "--db", db, "--pnl", "60.5")
    text = ok("positions", "history", position_id[:3], "--db", db).stdout.splitlines()
    assert text[0].startswith(f"{position_id}: SPX 3DTE P97 PUT_SPREAD x1") and text[0].endswith("| closed")
    assert [line.split()[3] for line in text[1:]] == ["add", "update", "close"]
    assert "-$50.00" in text[2] and "gap down" in text[2] and "+$60.50" in text[3]
    rows = json.loads(ok("positions", "history", position_id, "--db", db, "--json").stdout)
    assert [(r["action"], r["old_pnl"], r["new_pnl"], r["note"]) for r in rows] == [
        ("add", None, 0.0, "opened"), ("update", 0.0, -50.0, "gap down"), ("close", -50.0, 60.5, "")]
    assert list(rows[0]) == ["seq", "position_id", "time", "action", "old_pnl", "new_pnl", "note"]


# ---- exit rules and limits, from the config ----------------------------------------------------------------------
def test_update_says_profit_target_with_the_threshold(db: str):
    position_id = add(db, *CONDOR)
    result = ok("positions", "update", position_id, "--db", db, "--pnl", "142.49")
    assert result.stdout == f"Updated {position_id}: P&L +$0.00 -> +$142.49\n"
    result = ok("positions", "update", position_id, "--db", db, "--pnl", "142.50")
    assert result.stdout.splitlines() == [
        f"Updated {position_id}: P&L +$142.49 -> +$142.50",
        f"EXIT SIGNAL - Position {position_id} | Reason: Profit target hit | P&L: $142.50 (+50.0%) >= $142.50 "
        f"(50% of credit)"]


def test_update_and_close_say_stop_loss_with_the_threshold(db: str):
    position_id = add(db, *CONDOR)
    result = ok("positions", "update", position_id, "--db", db, "--pnl", "-570")
    assert "Reason: Stop loss hit | P&L: $-570.00 (-200.0%) <= $-570.00 (2x credit)" in result.stdout
    result = ok("positions", "close", position_id, "--db", db, "--pnl", "-600", "--json")
    data = json.loads(result.stdout)
    assert data["status"] == "closed" and data["pnl"] == -600.0 and data["previous_pnl"] == -570.0
    assert [s.split("Reason: ")[1].split(" |")[0] for s in data["exit_signals"]] == ["Stop loss hit"]
    assert list(data)[:len(LIST_KEYS)] == LIST_KEYS


def test_update_says_time_exit_one_session_before_expiry(db: str):
    calendar = MarketCalendar()
    today = calendar.et_date(pinned_instant())
    expiry = calendar.next_session(today)  # exactly 1 session to expiry from the CLI's today
    entry_session = expiry
    for _ in range(3):
        entry_session = calendar.previous_session(entry_session)
    entered = calendar.open_close(entry_session)[0] + timedelta(minutes=30)
    result = ok("positions", "add", "--db", db, "--json", *PUT, "--entry-time", entered.isoformat())
    assert result.stderr == ""
    position = json.loads(result.stdout)
    assert position["expiry"] == expiry.isoformat() and position["dte"] == 3
    result = ok("positions", "update", position["id"], "--db", db, "--pnl", "10")
    assert result.stdout.splitlines()[1:] == [
        f"EXIT SIGNAL - Position {position['id']} | Reason: Time exit: 1 session(s) to expiry <= 1"]


def test_thresholds_and_limits_come_from_the_config(db: str, tmp_path: Path):
    config = tmp_path / "small.yml"
    config.write_text("risk:\n  max_positions: 1\n  max_total_risk: 3000\nexits:\n  profit_target_pct: 0.25\n")
    first = ok("--config", str(config), "positions", "add", "--db", db, *PUT)
    assert first.stderr == ""
    second = ok("--config", str(config), "positions", "add", "--db", db, "--json", *PUT)
    assert second.stderr.splitlines() == [
        "warning: 2 open positions would exceed risk.max_positions 1",
        "warning: capital at risk $3,600.00 would exceed risk.max_total_risk $3,000.00"]
    assert len(listed(db)) == 2  # a warning, not a refusal: the trade has been made at the broker
    position_id = json.loads(second.stdout)["id"]
    result = ok("--config", str(config), "positions", "update", position_id, "--db", db, "--pnl", "50")
    assert "Profit target hit | P&L: $50.00 (+25.0%) >= $50.00 (25% of credit)" in result.stdout
    result = ok("positions", "update", position_id, "--db", db, "--pnl", "50")  # default config: 50 % target
    assert "EXIT SIGNAL" not in result.stdout
    for p in listed(db):
        ok("--config", str(config), "positions", "close", p["id"], "--db", db, "--pnl", "50")
    assert ok("--config", str(config), "positions", "add", "--db", db, *PUT).stderr == ""  # closed ones do not count


# ---- bad input: one line, non-zero exit, nothing written ---------------------------------------------------------
def fingerprint(path: Path) -> tuple:
    """The book file's bytes and the files beside it (a -wal or -journal left behind would show)."""
    return (path.read_bytes() if path.exists() else None, sorted(p.name for p in path.parent.iterdir()))


@pytest.fixture
def book(tmp_path: Path) -> Path:
    """A book with open positions aa11 and aa22 (a shared prefix) and a closed one, cc33."""
    path = tmp_path / "book.db"
    entry, _ = validate(PositionInput(ticker="NDX", spread="put_spread", band="P97", flow_mode="neutral", dte=3,
                                      contracts=1, credit=200.0, risk=None, short_put=19500.0, long_put=19480.0),
                        tickers=("NDX",))
    now = pinned_instant()
    state = {"entry_time": now - timedelta(days=1), "expiry": date(2027, 6, 18), "pnl": 0.0, "status": "open",
             "pnl_updated_at": now, "closed_at": None}
    with PositionBook(path) as b:
        b.import_positions([("aa11", entry, state), ("aa22", entry, state),
                            ("cc33", entry, {**state, "status": "closed", "pnl": 100.0, "closed_at": now})], now=now)
    return path


def without(args: list[str], *names: str) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        else:
            out.append(arg)
    return out


BAD_ADDS = {
    "unknown spread": (["--spread", "strangle"], "--spread: unknown spread 'strangle'"),
    "unknown band": (["--band", "P90"], "--band: unknown band 'P90'"),
    "unknown flow mode": (["--flow-mode", "sideways"], "--flow-mode: unknown flow mode"),
    "unknown ticker": (["--ticker", "RUT"], "--ticker: unknown ticker 'RUT'"),
    "dte < 0": (["--dte", "-1"], "--dte: must be a whole number >= 0, got -1"),
    "contracts < 1": (["--contracts", "0"], "--contracts: must be a whole number >= 1, got 0"),
    "credit 0": (["--credit", "0"], "--credit: must be > 0"),
    "credit < 0": (["--credit", "-285"], "--credit: must be > 0"),
    "credit = width x 100 x contracts": (["--credit", "20000"], "--credit: 20,000.00 must be below"),
    "credit > width x 100 x contracts": (["--credit", "25000"], "--credit: 25,000.00 must be below"),
    "risk 0": (["--risk", "0"], "--risk: must be > 0"),
    "risk < 0": (["--risk", "-1715"], "--risk: must be > 0"),
    "credit nan": (["--credit", "nan"], "--credit: nan is not a finite number"),
    "risk inf": (["--risk", "inf"], "--risk: inf is not a finite number"),
    "non-numeric credit": (["--credit", "abc"], "Invalid value for '--credit': 'abc' is not a valid float"),
    "non-numeric strike": (["--short-put", "19,500"], "Invalid value for '--short-put'"),
    "non-numeric dte": (["--dte", "three"], "Invalid value for '--dte'"),
    "wrong side leg": (["--spread", "put_spread", "--short-call", "20500", "--long-call", "20600"],
                       "--short-call: does not apply to a put_spread"),
    "strikes out of order": (["--short-put", "20550"], "strikes out of order: --short-put 20550 must be below "
                                                       "--short-call 20500"),
    "long put above short put": (["--long-put", "19600"], "strikes out of order: --long-put 19600"),
    "expiry on a holiday": (["--expiry", "2026-12-25"], "--expiry: 2026-12-25 is not a trading session"),
    "expiry on a weekend": (["--expiry", "2026-12-05"], "--expiry: 2026-12-05 is not a trading session"),
    "expiry not a date": (["--expiry", "2026-13-01"], "--expiry: '2026-13-01' is not a date (YYYY-MM-DD)"),
    "expiry in the past": (["--entry-time", "2020-01-02T15:00:00Z", "--dte", "0"],
                           "--expiry: 2020-01-02 is in the past"),
    "expiry before entry": (["--entry-time", "2020-01-06T15:00:00Z", "--expiry", "2020-01-03"],
                            "--expiry: 2020-01-03 is before the entry session 2020-01-06"),
    "expiry beyond the calendar": (["--expiry", "2101-01-03"], "--expiry: 2101-01-03 is outside the exchange "
                                                               "calendar's range"),
    "entry in the future": (["--entry-time", "2099-01-02T15:00:00Z"], "--entry-time: 2099-01-02T15:00:00Z is in "
                                                                      "the future"),
    "entry time without zone": (["--entry-time", "2026-11-20T07:30"], "instant '2026-11-20T07:30' has no time zone"),
    "unknown option": (["--colour", "red"], "No such option '--colour'"),
}


@pytest.mark.parametrize("case", list(BAD_ADDS))
def test_bad_add_is_one_line_non_zero_and_writes_nothing(case: str, book: Path):
    extra, message = BAD_ADDS[case]
    before = fingerprint(book)
    args = without(CONDOR, *[a for a in extra if a.startswith("--")]) + extra
    result = run("positions", "add", "--db", str(book), *args)
    assert result.exit_code != 0
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and message in line, line
    assert fingerprint(book) == before


@pytest.mark.parametrize("missing", ["--long-put", "--short-call", "--band", "--credit", "--contracts", "--dte"])
def test_a_missing_leg_or_required_flag_is_one_line(missing: str, book: Path):
    before = fingerprint(book)
    result = run("positions", "add", "--db", str(book), *without(CONDOR, missing))
    assert result.exit_code != 0 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert missing in line
    assert fingerprint(book) == before


BAD_CHANGES = {
    "unknown id": (["update", "zz99", "--pnl", "10"], "unknown position id 'zz99'"),
    "ambiguous id": (["update", "aa", "--pnl", "10"], "ambiguous position id 'aa': matches aa11, aa22"),
    "update closed": (["update", "cc33", "--pnl", "10"], "position cc33 is already closed; cannot update it"),
    "close twice": (["close", "cc3", "--pnl", "10"], "position cc33 is already closed; cannot close it"),
    "non-numeric pnl": (["update", "aa11", "--pnl", "ten"], "Invalid value for '--pnl': 'ten' is not a valid float"),
    "nan pnl": (["update", "aa11", "--pnl", "nan"], "--pnl: nan is not a finite number"),
    "inf pnl": (["close", "aa11", "--pnl", "-inf"], "--pnl: -inf is not a finite number"),
    "missing pnl": (["close", "aa11"], "Missing option '--pnl'"),
    "history of unknown id": (["history", "zz"], "unknown position id 'zz'"),
    "history ambiguous": (["history", "a"], "ambiguous position id 'a'"),
    "empty id": (["update", " ", "--pnl", "1"], "position id: '' is not a usable id"),
}


@pytest.mark.parametrize("case", list(BAD_CHANGES))
def test_bad_update_close_history_is_one_line_non_zero_and_writes_nothing(case: str, book: Path):
    args, message = BAD_CHANGES[case]
    before = fingerprint(book)
    result = run("positions", *args, "--db", str(book))
    assert result.exit_code != 0 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and message in line, line
    assert fingerprint(book) == before


@pytest.mark.parametrize("content", [b"this is a shopping list, not a database\n" * 20, b"SQLite format 3\x00" + b"\x00" * 10,
                                     "sqlite-foreign"])
def test_a_corrupt_or_foreign_book_is_one_line_for_every_command_and_left_as_it_was(content, tmp_path: Path):
    path = tmp_path / "book.db"
    if content == "sqlite-foreign":
        import sqlite3

        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE positions (id TEXT, note TEXT)")  # even a table of the same name
        conn.commit()
        conn.close()
    else:
        path.write_bytes(content)
    before = fingerprint(path)
    db = str(path)
    for args in (["add", *CONDOR], ["update", "aa11", "--pnl", "1"], ["close", "aa11", "--pnl", "1"], ["list"],
                 ["list", "--json"], ["summary"], ["history", "aa11"], ["import", str(DATA / "original_positions.json")]):
        result = run("positions", *args, "--db", db)
        assert result.exit_code == 1, (args, result.stdout, result.stderr)
        [line] = result.stderr.splitlines()
        assert line.startswith(f"Error: position book {db}: "), line
        assert "not a SQLite database" in line or "unreadable" in line or "not a spreadwatch position book" in line
        assert fingerprint(path) == before


def test_update_close_and_history_on_a_missing_book_do_not_create_it(tmp_path: Path):
    path = tmp_path / "typo.db"
    for args in (["update", "aa11", "--pnl", "1"], ["close", "aa11", "--pnl", "1"], ["history", "aa11"]):
        result = run("positions", *args, "--db", str(path))
        assert result.exit_code == 1
        assert result.stderr == f"Error: position book {path}: no such file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_update_close_and_history_on_an_empty_file_leave_it_empty(tmp_path: Path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    for args in (["update", "aa11", "--pnl", "1"], ["close", "aa11", "--pnl", "1"], ["history", "aa11"]):
        result = run("positions", *args, "--db", str(path))
        assert result.exit_code == 1
        assert result.stderr == f"Error: position book {path}: empty, no position has been added to it\n"
    assert path.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


# ---- where the book lives ----------------------------------------------------------------------------------------
def test_db_flag_beats_the_environment_which_beats_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "c.yml"
    config.write_text(f"paths:\n  database: {tmp_path / 'from-config.db'}\n")
    monkeypatch.setenv("SPREADWATCH_CONFIG", str(config))
    monkeypatch.setenv("SPREADWATCH_DB", str(tmp_path / "from-env.db"))
    ok("positions", "add", *PUT, "--db", str(tmp_path / "from-flag.db"), "--note", "flag")
    ok("positions", "add", *PUT, "--note", "env")
    monkeypatch.delenv("SPREADWATCH_DB")
    ok("positions", "add", *PUT, "--note", "config")
    monkeypatch.setenv("SPREADWATCH_CONFIG", "")
    ok("positions", "add", *PUT, "--note", "default")
    for name, note in (("from-flag.db", "flag"), ("from-env.db", "env"), ("from-config.db", "config"),
                       ("data/spreadwatch.db", "default")):
        assert [p["note"] for p in listed(str(tmp_path / name))] == [note], name
    # The readers follow the same order.
    monkeypatch.setenv("SPREADWATCH_DB", str(tmp_path / "from-env.db"))
    assert [p["note"] for p in json.loads(ok("positions", "list", "--json").stdout)] == ["env"]
    monkeypatch.delenv("SPREADWATCH_DB")
    assert [p["note"] for p in json.loads(ok("positions", "list", "--json").stdout)] == ["default"]
    assert json.loads(ok("--config", str(config), "positions", "summary", "--json").stdout)["total_count"] == 1


# ---- expiry on the XNYS calendar ---------------------------------------------------------------------------------
@pytest.mark.parametrize("now,entered,dte,expiry", [
    ("2026-11-25T16:00:00Z", "2026-11-25T15:00:00Z", "0", "2026-11-25"),
    ("2026-11-25T16:00:00Z", "2026-11-25T15:00:00Z", "1", "2026-11-27"),  # Thanksgiving, Thursday 26th, skipped
    ("2026-11-25T16:00:00Z", "2026-11-25T15:00:00Z", "2", "2026-11-30"),
    ("2026-11-25T23:00:00Z", "2026-11-25T21:30:00Z", "0", "2026-11-27"),  # after the close: next session's entry
    ("2026-12-24T19:00:00Z", "2026-12-24T17:00:00Z", "1", "2026-12-28"),  # Christmas Day skipped
    ("2026-12-24T19:00:00Z", "2026-12-24T18:30:00Z", "0", "2026-12-28"),  # after the 13:00 ET early close
    ("2026-11-28T12:00:00Z", "2026-11-28T12:00:00Z", "0", "2026-11-30"),  # a Saturday entry belongs to Monday
])
def test_expiry_from_dte_counts_sessions_and_honours_holidays(now, entered, dte, expiry, db: str,
                                                              monkeypatch: pytest.MonkeyPatch):
    pin_clock(monkeypatch, now)
    args = without(PUT, "--dte")
    result = ok("positions", "add", "--db", db, "--json", *args, "--dte", dte, "--entry-time", entered)
    assert json.loads(result.stdout)["expiry"] == expiry


def test_a_malformed_spreadwatch_now_is_a_usage_error_and_writes_nothing(db: str, monkeypatch: pytest.MonkeyPatch):
    pin_clock(monkeypatch, "tomorrow")
    result = run("positions", "add", "--db", db, *PUT)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Error: SPREADWATCH_NOW: not an ISO 8601 instant: 'tomorrow'")
    assert len(result.stderr.splitlines()) == 1 and not Path(db).exists()


def test_entry_time_defaults_to_now(db: str, monkeypatch: pytest.MonkeyPatch):
    pin_clock(monkeypatch, "2026-11-25T16:00:00Z")
    data = json.loads(ok("positions", "add", "--db", db, "--json", *without(PUT, "--dte"), "--dte", "1").stdout)
    assert data["entry_time"] == "2026-11-25T16:00:00+00:00" and data["expiry"] == "2026-11-27"


def test_an_explicit_expiry_wins_and_a_disagreeing_dte_is_a_warning(db: str, monkeypatch: pytest.MonkeyPatch):
    pin_clock(monkeypatch, "2026-11-25T16:00:00Z")
    args = [*without(PUT, "--dte"), "--dte", "1", "--entry-time", "2026-11-25T15:00:00Z"]
    result = ok("positions", "add", "--db", db, "--json", *args, "--expiry", "2026-11-30")
    assert json.loads(result.stdout)["expiry"] == "2026-11-30" and json.loads(result.stdout)["dte"] == 1
    assert result.stderr == ("warning: --expiry 2026-11-30 is 2 session(s) after the entry session 2026-11-25, "
                             "not --dte 1; both stored as given\n")
    result = ok("positions", "add", "--db", db, *args, "--expiry", "2026-11-27")
    assert result.stderr == ""


def test_a_thanksgiving_or_past_expiry_is_refused(db: str, monkeypatch: pytest.MonkeyPatch):
    pin_clock(monkeypatch, "2026-11-25T16:00:00Z")
    result = run("positions", "add", "--db", db, *PUT, "--expiry", "2026-11-26")
    assert result.exit_code == 1
    assert result.stderr == "Error: --expiry: 2026-11-26 is not a trading session (weekend or holiday)\n"
    result = run("positions", "add", "--db", db, *PUT, "--entry-time", "2026-11-20T15:00:00Z", "--expiry",
                 "2026-11-24")
    assert result.stderr == "Error: --expiry: 2026-11-24 is in the past\n"
    assert not Path(db).exists()


# ---- import of the original positions.json -----------------------------------------------------------------------
def test_import_of_the_originals_positions_file(db: str):
    result = ok("positions", "import", str(DATA / "original_positions.json"), "--db", db)
    assert result.stdout == (f"Imported 5 position(s) from {DATA / 'original_positions.json'} "
                             "(3 open, 2 closed)\n")
    every = {p["id"]: p for p in listed(db, "--include-closed")}
    assert list(every) == ["9c2e", "5d17", "a3f8", "b7c1", "e41d"]  # ids kept, oldest entry first
    assert every["9c2e"]["expiry"] == "2026-02-17"  # 1 DTE from Friday 13 Feb: Presidents' Day skipped
    assert every["9c2e"]["status"] == "closed" and every["9c2e"]["pnl"] == 150.0
    assert every["9c2e"]["closed_at"] == "2026-02-17T20:58:03+00:00"  # naive times are Pacific, the original's
    assert every["5d17"]["expiry"] == "2026-02-20" and every["5d17"]["pnl"] == -620.0
    a3f8 = every["a3f8"]
    assert (a3f8["spread"], a3f8["credit"], a3f8["risk"], a3f8["pnl"], a3f8["status"]) == (
        "iron_condor", 285.0, 1715.0, 142.5, "open")
    assert a3f8["entry_time"] == "2026-02-19T15:30:05+00:00" and a3f8["note"] == "Entry from 07:30 PST alert"
    assert every["e41d"]["spread"] == "call_spread" and every["e41d"]["short_put"] is None
    assert every["e41d"]["note"] == ""
    # The file's risks contradict its strikes: kept as imported, each disagreement reported, and the capital at
    # risk counts the strikes' risk (19,715 + 29,850 + 1,305 for the open ones), not the file's 3,870.
    # The three open positions expired in February (pinned now: 2026-11-24): kept as open, each one said, beside
    # its risk line, in sessions counted on the exchange calendar.
    def risk_line(pid: str, given: str, strikes: str) -> str:
        return (f"warning: position {pid}: risk ${given} disagrees with the strikes' ${strikes} (width x 100 x "
                f"contracts - credit); kept as imported, risk limits count ${strikes}")

    def expired_line(pid: str, sessions: int, expiry: str) -> str:
        return (f"warning: position {pid}: open but expired {sessions} session(s) ago ({expiry}); kept as imported, "
                f"close it with its final P&L: spreadwatch positions close {pid} --pnl <P&L>")

    assert result.stderr.splitlines() == [
        risk_line("9c2e", "850.00", "14,850.00"), risk_line("5d17", "1,890.00", "9,690.00"),
        risk_line("a3f8", "1,715.00", "19,715.00"), expired_line("a3f8", 190, "2026-02-24"),
        risk_line("b7c1", "850.00", "29,850.00"), expired_line("b7c1", 187, "2026-02-27"),
        expired_line("e41d", 191, "2026-02-23")]
    summary = json.loads(ok("positions", "summary", "--db", db, "--json").stdout)
    assert summary == {"total_count": 5, "open_count": 3, "closed_count": 2, "total_risk": 50870.0,
                       "unrealized_pnl": 215.0, "realized_pnl": -470.0, "total_pnl": -255.0}
    history = json.loads(ok("positions", "history", "a3", "--db", db, "--json").stdout)
    assert [(h["action"], h["new_pnl"]) for h in history] == [("import", 142.5)]
    # Importing the same file again would duplicate ids: refused, nothing imported.
    before = fingerprint(Path(db))
    result = run("positions", "import", str(DATA / "original_positions.json"), "--db", db)
    assert result.exit_code == 1
    assert result.stderr == "Error: position id '9c2e' is already in the book; nothing imported\n"
    assert fingerprint(Path(db)) == before


@pytest.mark.parametrize("breakage,message", [
    (lambda d: d["positions"]["a3f8"].update(entry_credit=-285.0),
     "positions[2] (id a3f8): credit: must be > 0"),
    (lambda d: d["positions"]["b7c1"].update(stike=19800.0), "positions[3].stike: unknown key"),
    (lambda d: d["positions"]["e41d"].update(short_put=20700.0), "positions[4] (id e41d): short-put: does not apply "
                                                                 "to a call_spread"),
    (lambda d: d["positions"]["5d17"].update(expiration="2026-02-16"), "positions[1] (id 5d17): expiry: 2026-02-16 is "
                                                                       "not a trading session"),
    (lambda d: d["positions"]["9c2e"].pop("dte"), "positions[0] (id 9c2e): dte: missing"),
])
def test_a_malformed_import_names_the_record_and_imports_nothing(breakage, message, tmp_path: Path, book: Path):
    data = json.loads((DATA / "original_positions.json").read_text())
    breakage(data)
    bad = tmp_path / "positions.json"
    bad.write_text(json.dumps(data))
    for target in (book, tmp_path / "new.db"):
        before = fingerprint(target)
        result = run("positions", "import", str(bad), "--db", str(target))
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr == f"Error: {bad}: {message}; nothing imported\n" or (
            result.stderr.startswith(f"Error: {bad}: {message}") and result.stderr.endswith("; nothing imported\n")
        ), result.stderr
        assert fingerprint(target) == before


@pytest.mark.parametrize("text,message", [
    ('{"positions": [', "not valid JSON (line 1, column 16"),
    ("[1, 2]", "positions[0]: expected an object, got int; nothing imported"),
    ('"positions"', "expected a list of positions"),
])
def test_an_unreadable_import_file_imports_nothing(text: str, message: str, tmp_path: Path, book: Path):
    bad = tmp_path / "positions.json"
    bad.write_text(text)
    before = fingerprint(book)
    result = run("positions", "import", str(bad), "--db", str(book))
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: {bad}: ") and message in line, line
    assert fingerprint(book) == before
    result = run("positions", "import", str(tmp_path / "absent.json"), "--db", str(book))
    assert result.stderr == f"Error: {tmp_path / 'absent.json'}: no such file\n"


# ---- real processes ------------------------------------------------------------------------------------------------
def spreadwatch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spreadwatch", *args], capture_output=True, text=True,
                          env={**os.environ, "SPREADWATCH_CONFIG": "", **(env or {})}, timeout=60)


@pytest.mark.slow  # over 2 s: a real process or a whole replayed day; the full suite runs it
def test_a_real_process_round_trip_with_one_line_errors(tmp_path: Path):
    db = str(tmp_path / "book.db")
    added = spreadwatch("positions", "add", *CONDOR, "--risk", "19715", env={"SPREADWATCH_DB": db})
    assert added.returncode == 0 and added.stderr == "", added.stderr
    position_id = added.stdout.split()[1].rstrip(":")
    updated = spreadwatch("positions", "update", position_id[:4], "--pnl", "150", "--db", db)
    assert updated.returncode == 0 and "Profit target hit" in updated.stdout
    bad = spreadwatch("positions", "close", position_id, "--pnl", "lots", "--db", db)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1
    assert "Traceback" not in bad.stderr
    closed = spreadwatch("positions", "close", position_id, "--pnl", "150", "--db", db)
    assert closed.returncode == 0
    twice = spreadwatch("positions", "close", position_id, "--pnl", "150", "--db", db)
    assert twice.returncode == 1
    assert twice.stderr == f"Error: position {position_id} is already closed; cannot close it\n"


HEAVY = ("pandas", "numpy", "exchange_calendars", "sqlite_utils", "yfinance", "scipy", "matplotlib")
PROBE = """
import sys
from spreadwatch.edges.cli import cli
cli.main(sys.argv[2:], prog_name="spreadwatch", standalone_mode=False)
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(",")))
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["list", "--include-closed"], ["summary"],
                                  ["summary", "--json"]])
def test_list_and_summary_import_no_pandas_calendar_or_sqlite_utils(args: list[str], book: Path):
    # sys.argv[1]: the module names to look for; the rest is the command line.
    result = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), "positions", *args, "--db", str(book)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SPREADWATCH_CONFIG": ""})
    assert result.returncode == 0, result.stderr
    assert "aa11" in result.stdout or "Total: 3" in result.stdout or "total_count" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "HEAVY="


@pytest.mark.parametrize("args", [["add", "--ticker", "NDX", *PUT], ["update", "aa11", "--pnl", "-25"],
                                  ["close", "aa22", "--pnl", "40"]])
def test_writes_import_no_pandas_calendar_or_sqlite_utils(args: list[str], book: Path):
    # The expiry and the exit rules' session counts come from the bundled session table; the rows are written
    # through the standard library's sqlite3.
    result = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), "positions", *args, "--db", str(book)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SPREADWATCH_CONFIG": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(("Added", "Updated aa11", "Closed aa22"))
    assert result.stderr.strip().splitlines()[-1] == "HEAVY="
