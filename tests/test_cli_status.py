"""`spreadwatch status`: the bundled replay by default (and saying so), --at, --json keys, errors in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from spreadwatch.edges.cli import cli
from spreadwatch.edges.providers import ProviderError

JSON_KEYS = {"ticker", "time", "session", "market_open", "price", "change_ratio", "vix", "regime", "iv_rank",
             "iv_percentile", "volume_ratio", "trend", "flow", "sources"}


@pytest.fixture(autouse=True)
def isolated(no_network, monkeypatch):
    monkeypatch.setenv("SPREADWATCH_CONFIG", "")


def status(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["status", *args])
    return result.exit_code, result.output


# The NDX replay day (synthetic, 2026-11-24) for the tests of its exact values; the bundled day is SPX.
NDX = ("--source", f"replay:{Path(__file__).parent / 'data' / 'ndx' / 'replay_sample.csv'}", "--ticker", "NDX")


def test_default_source_is_the_bundled_replay_and_says_so():
    code, out = status("--at", "2019-01-02T14:35:00Z")
    assert code == 0, out
    assert "source: replay (bundled sample, SYNTHETIC data" in out
    assert "SPX at 2019-01-02 06:35 PT (2019-01-02T14:35:00Z)" in out  # the display zone, with its abbreviation
    assert "regime: low (from high at 06:31 PT)" in out  # the real 2018-12-31 close was in the high regime


def test_json_has_the_stable_keys_and_answers_as_of_the_instant():
    code, out = status(*NDX, "--at", "2026-11-24T16:00:00Z", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert set(data) >= JSON_KEYS
    assert data["time"] == "2026-11-24T16:00:00Z"
    assert data["source"] == "replay"
    assert data["session"] == "open" and data["market_open"] is True
    assert data["regime"] == "medium" and data["vix"] == 16.83  # the bar stamped 16:00:00Z is visible at 16:00
    assert 20_000 < data["price"] < 21_000
    assert data["flow"] == "down"
    assert set(data["sources"]) == {"^NDX", "^VIX", "^VXN", "QQQ"}
    assert all(s["up"] is True and s["age_seconds"] == 0 for s in data["sources"].values())


def test_before_the_crossing_the_regime_is_low_and_after_the_close_values_stay():
    assert json.loads(status(*NDX, "--at", "2026-11-24T15:00:00Z", "--json")[1])["regime"] == "low"
    after = json.loads(status(*NDX, "--at", "2026-11-24T22:00:00Z", "--json")[1])
    assert after["session"] == "after" and after["market_open"] is False
    assert after["price"] is not None and after["regime"] == "medium"


def test_without_at_replay_answers_just_before_the_first_entry_window_with_known_values():
    code, out = status("--json")
    data = json.loads(out)
    # The entry hours open with the session (06:30 PT); the replay starts two minutes before, on the last close.
    assert code == 0 and data["time"] == "2019-01-02T14:28:00Z" and data["session"] == "pre"
    assert data["price"] == 2506.85 and data["regime"] == "high" and data["vix"] == 25.42
    code, out = status()
    assert "SPX at 2019-01-02 06:28 PT" in out and "regime: high" in out
    # The only unknown before the open is the 0-DTE flow (it compares with the day's open), and it says so.
    assert out.split("Opportunities")[0].count("unknown") == 1 and "unknown (before the open)" in out
    assert "sources: ^GSPC up (the last close, 41.5 h ago); ^VIX up (the last close, 41.5 h ago)" in out, out


def test_an_unknown_value_says_why():
    # At the open no bar of the day exists yet and yesterday's close is past the open: unknown, not invented.
    code, out = status("--at", "2019-01-02T14:30:00Z")
    assert "price: unknown (no bar yet since the open)" in out, out
    assert "regime: unknown (no bar yet since the open)" in out, out
    code, out = status("--at", "2019-01-02T14:25:00Z")
    assert "(0 DTE: unknown (before the open))" in out, out
    code, out = status("--start", "2019-01-02T18:00:00Z", "--json")
    assert json.loads(out)["time"] == "2019-01-02T18:00:00Z"


def test_replay_file_and_trend_override(tmp_path: Path):
    path = tmp_path / "day.csv"
    path.write_text("timestamp,symbol,open,high,low,close,volume\n"
                    "2026-11-24T15:00:00Z,^VIX,22,22,22,22,0\n"
                    "2026-11-24T15:01:00Z,^VIX,22,22,22,,0\n", encoding="utf-8")
    code, out = status("--source", f"replay:{path}", "--ticker", "NDX", "--at", "2026-11-24T15:01:30Z", "--trend",
                       "up", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["vix"] == 22 and data["regime"] == "high"
    assert data["sources"]["^VIX"]["up"] is False and data["sources"]["^VIX"]["errors"] == {"nan": 1}
    assert data["price"] is None and data["sources"]["^NDX"]["up"] is False
    assert data["trend"] == "up"
    assert str(path) in data["source_description"]


@pytest.mark.parametrize("args,message,exit_code", [
    (("--source", "bloomberg"), "unknown --source 'bloomberg'", 2),
    (("--at", "2026-11-24 15:00"), "has no time zone", 2),  # not an instant at all: the command line is wrong
    (("--at", "tomorrow"), "not an ISO 8601 instant", 2),
    (("--ticker", "XYZ"), "unknown ticker 'XYZ'", 1),
    (("--source", "replay:/no/such.csv"), "replay file not found", 1),
    (("--at", "1990-01-02T15:00:00Z"), "outside the exchange calendar's range", 1),
])
def test_bad_input_is_one_line_and_its_exit_code(args, message, exit_code):
    code, out = status(*args)
    assert code == exit_code
    assert message in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1


def test_live_source_without_network_reports_sources_down(monkeypatch):
    import spreadwatch.edges.providers.yahoo as yahoo

    class Offline:
        label = "live"
        description = "yahoo (live, via yfinance)"

        def __init__(self, *args, **kwargs) -> None:
            pass

        def _fail(self, symbol, *args):
            raise ProviderError(symbol, "exception", "network unreachable")

        latest = intraday = daily = _fail

    monkeypatch.setattr(yahoo, "YahooProvider", Offline)
    code, out = status("--source", "yahoo", "--at", "2026-11-24T16:00:00Z", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["source"] == "live"
    assert data["price"] is None and data["vix"] is None and data["regime"] is None
    assert all(s["up"] is False for s in data["sources"].values())
    code, out = status("--source", "yahoo", "--at", "2026-11-24T16:00:00Z")
    assert "^VIX DOWN" in out and "price: unknown" in out


def test_status_shows_the_portfolio_and_its_exit_signals(tmp_path: Path):
    db = str(tmp_path / "book.db")
    runner = CliRunner()
    add = runner.invoke(cli, ["positions", "add", "--db", db, "--dte", "3", "--band", "P98", "--spread", "put_spread",
                              "--contracts", "1", "--credit", "200", "--short-put", "19500", "--long-put", "19450",
                              "--json"])
    assert add.exit_code == 0, add.output
    position_id = json.loads(add.stdout)["id"]
    assert runner.invoke(cli, ["positions", "update", position_id, "--db", db, "--pnl", "120"]).exit_code == 0
    code, out = status("--at", "2026-11-24T15:30:00Z", "--db", db)
    assert code == 0, out
    assert "Portfolio: 1 open (max 5), 0 closed | risk $4,800.00 of $50,000.00 | unrealized +$120.00" in out
    assert f"EXIT SIGNAL - Position {position_id} | Reason: Profit target hit" in out
    code, out = status("--at", "2026-11-24T15:30:00Z", "--db", db, "--json")
    portfolio = json.loads(out)["portfolio"]
    assert portfolio["open_count"] == 1 and portfolio["total_risk"] == 4800.0 and portfolio["unrealized_pnl"] == 120
    assert portfolio["max_total_risk"] == 50000 and len(portfolio["exit_signals"]) == 1


def test_status_reports_a_corrupt_book_without_failing(tmp_path: Path):
    db = tmp_path / "book.db"
    db.write_bytes(b"not a database at all")
    code, out = status(*NDX, "--at", "2026-11-24T15:30:00Z", "--db", str(db), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["portfolio"] is None and "not a SQLite database" in report["portfolio_error"]
    assert report["price"] is not None  # the market part is still answered
    assert db.read_bytes() == b"not a database at all"


def test_the_opportunities_risk_check_reads_the_book_status_shows(tmp_path: Path):
    """One read of the --db book: the portfolio section shows it and the opportunities are checked against it."""
    db = str(tmp_path / "book.db")
    add = CliRunner().invoke(cli, ["positions", "add", "--db", db, "--ticker", "SPX", "--dte", "3", "--band", "P98",
                                   "--spread", "put_spread", "--contracts", "1", "--credit", "200",
                                   "--short-put", "2400", "--long-put", "1900", "--json"])
    assert add.exit_code == 0, add.output
    code, out = status("--at", "2019-01-02T14:35:00Z", "--json")
    assert code == 0, out
    free = json.loads(out)
    assert free["opportunities"] and not any(o["blocked_by_risk"] for o in free["opportunities"])
    code, out = status("--at", "2019-01-02T14:35:00Z", "--db", db, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["portfolio"]["open_count"] == 1 and report["portfolio"]["total_risk"] == 49_800.0
    assert [o["id"] for o in report["opportunities"]] == [o["id"] for o in free["opportunities"]]
    assert all(o["blocked_by_risk"] for o in report["opportunities"])  # 49,800 open + each one's risk > 50,000
