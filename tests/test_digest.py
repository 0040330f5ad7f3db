"""The morning brief and the end-of-day summary: when each is up (session days only, early closes honoured), the
exact text, written once per window, and the series that carry it to Alertmanager."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from exporter_support import make_service, sample, utc
from spreadwatch.app.digest import windows
from spreadwatch.config import Config, bundled_path, parse_config
from spreadwatch.domain.positions import PositionInput
from spreadwatch.edges.providers.replay import ReplayProvider
from spreadwatch.edges.store import PositionBook

BRIEF_AT = utc("2019-01-02T14:00:00Z")  # 06:00 PT, 30 minutes before the bundled day's open
SUMMARY_AT = utc("2019-01-02T21:05:00Z")  # 13:05 PT, 5 minutes after its close

BRIEF = """Regime: high, VIX 25.42
Events today: none
Events later this week: Jobs report 2019-01-04 (holds entries)
Session: opens 06:30 PT, closes 13:00 PT; entry window 06:30-08:59 PT, each setup within 15 min of its entry time
Open positions (2):
  {b} SPX put_spread P97 x1, expiry 2019-01-02 (expires today): P&L +$0.00 logged 12-31 07:00 PT, +$118.27 estimated
    short put 2380: 126.8 pts away (5.06%, 3.16 expected moves)
  {a} SPX put_spread P98 x1, expiry 2019-01-03 (1 session to expiry): P&L +$40.00 logged 12-31 12:00 PT, \
+$131.33 estimated
    short put 2400: 106.8 pts away (4.26%, 1.88 expected moves)
Risk: $730.00 of $50,000.00 (1%); 2 of 5 positions"""

SUMMARY = """Regime: medium, VIX 16.60
Realized P&L today: +$100.00 (1 closed)
Open positions (1):
  {a} SPX put_spread P98 x1, expiry 2019-01-03 (1 session to expiry): P&L +$40.00 logged 12-31 12:00 PT, \
+$149.09 estimated
    short put 2400: 90.5 pts away (3.63%, 3.47 expected moves)
Needs a P&L update: {a} (last 12-31 12:00 PT) (spreadwatch positions update ID --pnl ...)
Risk: $350.00 of $50,000.00 (1%); 1 of 5 positions
Events today: none
Events later this week: Jobs report 2019-01-04 (holds entries)"""


def book_with_two_positions(db: Path) -> tuple[str, str]:
    """A 3-DTE put spread with a logged P&L and a 1-DTE one expiring on the bundled day, both entered 2018-12-31."""
    entered = utc("2018-12-31T15:00:00Z")
    with PositionBook(db) as book:
        a = book.add(PositionInput("SPX", "put_spread", "P98", "with_flow", 3, 1, 150.0, 350.0, short_put=2400.0,
                                   long_put=2395.0), entry_time=entered, expiry=date(2019, 1, 3), now=entered)
        book.set_pnl(a.id, 40.0, now=utc("2018-12-31T20:00:00Z"))
        b = book.add(PositionInput("SPX", "put_spread", "P97", "with_flow", 1, 1, 120.0, 380.0, short_put=2380.0,
                                   long_put=2375.0), entry_time=entered, expiry=date(2019, 1, 2), now=entered)
    return a.id, b.id


def bundled_day_service(tmp_path: Path, start=BRIEF_AT):
    db = tmp_path / "book.db"
    ids = book_with_two_positions(db)
    config = parse_config({"events": {"extra": {"jobs": ["2019-01-04"]}}})
    service = make_service(tmp_path, ReplayProvider(bundled_path("replay_sample.csv")), start=start, config=config,
                           tickers=("SPX",), grid=bundled_path("grid_spx.csv"), db=db)
    return service, db, ids


def test_windows_are_before_the_open_and_after_the_close_of_sessions_only(cal):
    config = Config()
    w = windows(config, cal, date(2026, 12, 9))
    assert w["morning_brief"] == (utc("2026-12-09T14:00:00Z"), utc("2026-12-09T14:30:00Z"))
    assert w["day_summary"] == (utc("2026-12-09T21:05:00Z"), utc("2026-12-09T21:35:00Z"))
    assert windows(config, cal, date(2026, 11, 27))["day_summary"][0] == utc("2026-11-27T18:05:00Z")  # early close
    assert windows(config, cal, date(2026, 12, 25)) == {}  # Christmas
    assert windows(config, cal, date(2026, 12, 26)) == {}  # a Saturday
    off = parse_config({"digest": {"morning_brief": False, "brief_minutes_before_open": 60}})
    assert set(windows(off, cal, date(2026, 12, 9))) == {"day_summary"}


def test_the_brief_says_exactly_this_and_is_written_once(tmp_path: Path):
    service, db, (a, b) = bundled_day_service(tmp_path, start=BRIEF_AT - timedelta(minutes=1))
    service.step(BRIEF_AT - timedelta(minutes=1), {"market", "positions", "scan"})
    assert service.snapshot.digests == ()
    service.step(BRIEF_AT, {"market", "positions", "scan"})
    (brief,) = service.snapshot.digests
    assert brief.kind == "morning_brief" and brief.title == "[BRIEF] Morning brief for Wed 2019-01-02"
    assert brief.text == BRIEF.format(a=a, b=b)
    labels = {"kind": "morning_brief", "day": "2019-01-02"}
    assert sample(service, "spreadwatch_digest", labels) == 1
    assert sample(service, "spreadwatch_digest_info", {**labels, "title": brief.title, "text": brief.text}) == 1
    with PositionBook(db) as book:  # a change within the window does not rewrite the brief
        book.set_pnl(a, 75.0, now=BRIEF_AT + timedelta(minutes=5))
    service.step(BRIEF_AT + timedelta(minutes=10), {"market", "positions", "scan"})
    assert service.snapshot.digests == (brief,)
    service.step(BRIEF_AT + timedelta(minutes=30), {"market", "positions", "scan"})
    assert service.snapshot.digests == () and sample(service, "spreadwatch_digest", labels) is None


def test_the_summary_says_exactly_this_with_the_days_realized_pnl(tmp_path: Path):
    service, db, (a, b) = bundled_day_service(tmp_path, start=SUMMARY_AT)
    with PositionBook(db) as book:
        book.set_pnl(b, 100.0, now=utc("2019-01-02T17:00:00Z"), close=True)
    service.step(SUMMARY_AT, {"market", "positions", "scan"})
    (summary,) = service.snapshot.digests
    assert summary.title == "[SUMMARY] End-of-day summary for Wed 2019-01-02"
    assert summary.text == SUMMARY.format(a=a)


@pytest.mark.parametrize("instant", ["2026-12-25T14:00:00Z", "2026-12-25T21:05:00Z", "2026-12-26T14:00:00Z"])
def test_a_holiday_or_weekend_has_no_brief_and_no_summary(tmp_path: Path, instant: str):
    service = make_service(tmp_path, start=utc(instant))
    service.step(utc(instant), {"market", "positions", "scan"})
    assert service.snapshot.digests == ()
    assert sample(service, "spreadwatch_digest", {"kind": "morning_brief", "day": instant[:10]}) is None
    assert sample(service, "spreadwatch_digest", {"kind": "day_summary", "day": instant[:10]}) is None


def test_bad_digest_settings_are_refused_with_their_path():
    from spreadwatch.errors import ConfigError

    with pytest.raises(ConfigError, match="digest.window_minutes: must be between 1 and 240"):
        parse_config({"digest": {"window_minutes": 0}})
    with pytest.raises(ConfigError, match="digest.brief_minutes_before_open: must be between 0 and 720"):
        parse_config({"digest": {"brief_minutes_before_open": 900}})
