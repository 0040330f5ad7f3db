"""The one-shot commands' logic, in the library, without the CLI: expiry resolution, the import file, the status
report and the scan with what-if overrides, and the run settings. Every instant is pinned."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from spreadwatch.app.book import read_import_file, resolve_expiry
from spreadwatch.app.runner import RunRequest, run
from spreadwatch.app.scan import run_scan
from spreadwatch.app.status import status_report
from spreadwatch.config import Config
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.errors import ConfigError, InputError

CAL = MarketCalendar()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---- expiry -----------------------------------------------------------------------------------------------------
def test_expiry_from_dte_counts_sessions_across_the_thanksgiving_holiday():
    # Entered Wednesday 2026-11-25 10:00 ET: 1 DTE skips Thanksgiving (11-26) and is Friday 11-27 (an early close).
    entered = utc("2026-11-25T15:00:00Z")
    assert resolve_expiry(CAL, entered, 1, None, entered) == (date(2026, 11, 27), [])
    assert resolve_expiry(CAL, entered, 0, None, entered) == (date(2026, 11, 25), [])


def test_expiry_after_the_close_belongs_to_the_next_session():
    entered = utc("2026-11-24T21:30:00Z")  # 16:30 ET, after the close: the entry session is 11-25
    assert resolve_expiry(CAL, entered, 0, None, entered)[0] == date(2026, 11, 25)


def test_a_given_expiry_that_disagrees_with_the_dte_is_kept_with_a_warning():
    entered = utc("2026-11-24T15:00:00Z")
    expires, warnings = resolve_expiry(CAL, entered, 3, "2026-11-25", entered)
    assert expires == date(2026, 11, 25)
    assert warnings == ["warning: --expiry 2026-11-25 is 1 session(s) after the entry session 2026-11-24, not "
                        "--dte 3; both stored as given"]


@pytest.mark.parametrize("given,message", [
    ("2026-11-26", "--expiry: 2026-11-26 is not a trading session (weekend or holiday)"),
    ("26/11/2026", "--expiry: '26/11/2026' is not a date (YYYY-MM-DD)"),
    ("2026-11-23", "--expiry: 2026-11-23 is before the entry session 2026-11-24"),
])
def test_a_given_expiry_is_checked_against_the_calendar(given, message):
    entered = utc("2026-11-24T15:00:00Z")
    with pytest.raises(InputError) as err:
        resolve_expiry(CAL, entered, 1, given, entered)
    assert str(err.value) == message


def test_an_expiry_in_the_past_is_refused():
    entered = utc("2026-11-24T15:00:00Z")
    with pytest.raises(InputError, match=r"^--expiry: 2026-11-24 is in the past$"):
        resolve_expiry(CAL, entered, 0, None, utc("2026-11-25T15:00:00Z"))


# ---- import file ------------------------------------------------------------------------------------------------
def test_the_import_file_names_what_is_wrong(tmp_path: Path):
    missing = tmp_path / "none.json"
    with pytest.raises(InputError, match=rf"^{missing}: no such file$"):
        read_import_file(str(missing))
    broken = tmp_path / "broken.json"
    broken.write_text('[{"dte": 1,}]')
    with pytest.raises(InputError, match=r"not valid JSON \(line 1, column 12: "):
        read_import_file(str(broken))
    good = tmp_path / "positions.json"
    good.write_text('{"positions": []}')
    assert read_import_file(str(good)) == {"positions": []}


# ---- status and scan --------------------------------------------------------------------------------------------
def test_status_report_has_every_section_and_an_absent_book_is_an_empty_portfolio(tmp_path: Path):
    report, lines = status_report(Config(), ticker=None, source_spec=None, at="2019-01-02T15:30:00Z", start=None,
                                  trend=None, db_path=str(tmp_path / "none.db"))
    assert report["ticker"] == "SPX" and report["source"] == "replay" and report["regime"] is not None
    assert report["portfolio_error"] is None and report["portfolio"]["open_count"] == 0
    assert report["scan_error"] is None and report["matching_count"] is not None
    assert lines[0].startswith("SPX at 2019-01-02 07:30 PT (2019-01-02T15:30:00Z)")
    assert any(line.startswith("Portfolio: 0 open (max 5)") for line in lines)


def test_a_corrupt_book_is_reported_in_the_status_not_fatal(tmp_path: Path):
    book = tmp_path / "book.db"
    book.write_text("not a database")
    report, lines = status_report(Config(), ticker=None, source_spec=None, at="2019-01-02T15:30:00Z", start=None,
                                  trend=None, db_path=str(book))
    assert report["portfolio"] is None and "not a SQLite database" in report["portfolio_error"]
    assert report["price"] is not None  # the market part is still answered


def test_what_if_vix_sets_the_regime_without_hysteresis(tmp_path: Path):
    result, context, _ = run_scan(Config(), ticker=None, source_spec=None, start_at=None,
                                  at="2019-01-02T15:30:00Z", trend=None, vix=31.0, price=2500.0, flow="down",
                                  grid_file=None, db_path=str(tmp_path / "none.db"), include_all=True)
    assert (context.vix, context.regime, context.price, context.flow) == (31.0, "extreme", 2500.0, "down")
    assert result.regime == "extreme"


# ---- run settings ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("request_, error, message", [
    (RunRequest(tickers=("XYZ",)), ConfigError, "unknown ticker 'XYZ'"),
    (RunRequest(scan_interval=0), InputError, "--scan-interval: must be > 0"),
    (RunRequest(speed=0), InputError, "--speed: must be > 0"),
    (RunRequest(speed=float("nan")), InputError, "--speed: nan is not a finite number"),
    (RunRequest(scan_interval=1e300), InputError, "--scan-interval: 1e\\+300 s is beyond the longest accepted"),
    (RunRequest(source_spec="yahoo", speed=60), InputError, "--start and --speed apply to a replay source only"),
    (RunRequest(listen="nowhere"), InputError, "--listen 'nowhere': expected HOST:PORT"),
])
def test_bad_run_settings_stop_before_anything_starts(tmp_path: Path, request_, error, message):
    with pytest.raises(error, match=message):
        run(Config(), RunRequest(**{**request_.__dict__, "db_path": str(tmp_path / "book.db")}))
    assert not (tmp_path / "book.db").exists()
