"""Market data that cannot be true (a price or VIX not > 0, a close of 0, a high below the low, an infinite value) is a
bad value of its source: counted once as `invalid`, the field unknown, never used as data, never a crash, logged
once per episode. Through the replay provider on replay files holding such rows, the real loop on the replay
clock, and `status --at`."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter_support import NDX_REPLAY, make_service, run_replay, utc
from exporter_support import sample as value
from spreadwatch.app.watcher import MarketWatcher
from spreadwatch.config import Config
from spreadwatch.domain.market_rules import impossible
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.edges.cli import cli
from spreadwatch.edges.providers.replay import ReplayProvider

FETCH = "spreadwatch.app.watcher"
EVENTS = "spreadwatch.events"


def bad_replay(tmp_path: Path, rows: dict[tuple[str, str], str]) -> Path:
    """The NDX replay day with the rows keyed (timestamp, symbol) given new `open,high,low,close` cells."""
    out = []
    left = dict(rows)
    for line in NDX_REPLAY.read_text(encoding="utf-8").splitlines():
        cells = line.split(",")
        key = (cells[0], cells[1]) if len(cells) == 7 else None
        if key in left:
            line = ",".join([*key, left.pop(key), cells[6]])
        out.append(line)
    assert not left, f"rows not in the replay file: {left}"
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def close_of(stamp: str, symbol: str) -> float:
    """The replay file's close of one bar."""
    for line in NDX_REPLAY.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{stamp},{symbol},"):
            return float(line.split(",")[5])
    raise AssertionError(f"no bar {stamp} {symbol}")


@pytest.mark.parametrize("bar,level,why", [
    ({"close": 0.0}, False, "close must be > 0, got 0"),
    ({"close": -20000.0}, False, "close must be > 0, got -20000"),
    ({"close": -1.0}, True, "close must be > 0, got -1"),
    ({"close": math.inf}, False, "close inf is not a finite number"),
    ({"close": 1e8}, False, "close 1e+08 is above the largest accepted (1e+07)"),
    ({"close": 2000.0}, True, "close 2000 is above the largest accepted (1000)"),
    ({"close": 100.0, "high": 99.0, "low": 101.0}, False, "high 99 below low 101"),
    ({"close": 100.0, "open_": 0.0}, False, "open must be > 0, got 0"),
    ({"close": 100.0, "low": -5.0}, False, "low must be > 0, got -5"),
])
def test_a_bar_that_cannot_be_true_is_named_with_its_field(bar, level, why):
    assert impossible(**bar, level=level) == why


@pytest.mark.parametrize("bar", [{"close": 20450.5, "high": 20460.0, "low": 20440.0}, {"close": math.nan},
                                 {"close": None}, {"close": 15.2, "high": math.nan, "low": 15.1}])
def test_a_true_or_missing_bar_is_not_judged_impossible(bar):
    # NaN and missing are "no value" (kind nan), not false data.
    assert impossible(**bar) is None


def watcher(path: Path) -> MarketWatcher:
    config = Config()
    return MarketWatcher(config, ReplayProvider(path), MarketCalendar.of(config), "NDX")


def test_a_zero_close_is_unknown_counted_once_and_never_divided_by(tmp_path):
    # The 07:20 PT ^NDX bar closes at 0. At 07:30 the 0-DTE flow compares the price with the newest bar at or before
    # 07:20: that bar, which used to be "float division by zero" in the market task.
    w = watcher(bad_replay(tmp_path, {("2026-11-24T15:20:00Z", "^NDX"): "20449.92,20469.63,20435.17,0"}))
    at_bar = w.update(utc("2026-11-24T15:20:30Z"))
    ndx = at_bar.sources["^NDX"]
    assert at_bar.price == close_of("2026-11-24T15:19:00Z", "^NDX")  # the last good value stands while fresh
    assert not ndx.up and ndx.errors == {"invalid": 1}
    later = w.update(utc("2026-11-24T15:30:00Z"))
    assert later.price == close_of("2026-11-24T15:30:00Z", "^NDX")
    assert later.sources["^NDX"].up
    assert later.sources["^NDX"].errors == {"invalid": 1}  # met again among the session's bars: still one value
    # The flow over the last 10 minutes is measured against the newest true bar before 07:20 PT.
    before = close_of("2026-11-24T15:19:00Z", "^NDX")
    move = later.price / before - 1.0
    assert later.flow_0dte == ("up" if move > 0.0005 else "down" if move < -0.0005 else "flat")


def test_a_zero_previous_close_leaves_the_change_unknown(tmp_path):
    # The 11-23 session's last bar closes at 0, so that day's close (the previous close on 11-24) is no value.
    w = watcher(bad_replay(tmp_path, {("2026-11-23T21:00:00Z", "^NDX"): "20475.55,20483.12,20472.43,0"}))
    ctx = w.update(utc("2026-11-24T15:30:00Z"))
    assert ctx.prev_close is None and ctx.change_ratio is None and ctx.flow is None
    assert ctx.price == close_of("2026-11-24T15:30:00Z", "^NDX")
    assert ctx.sources["^NDX"].errors == {"invalid": 1} and ctx.sources["^NDX"].up
    assert 0.0 not in ctx.daily_closes


def test_a_high_below_the_low_and_an_infinite_level_are_invalid_not_nan(tmp_path):
    w = watcher(bad_replay(tmp_path, {("2026-11-24T15:20:00Z", "^NDX"): "20449.92,20435.17,20469.63,20454.88",
                                      ("2026-11-24T15:20:00Z", "^VXN"): "inf,inf,inf,inf"}))
    ctx = w.update(utc("2026-11-24T15:20:00Z"))
    assert ctx.sources["^NDX"].errors == {"invalid": 1} and ctx.sources["^VXN"].errors == {"invalid": 1}
    assert not ctx.sources["^NDX"].up and not ctx.sources["^VXN"].up
    # The price keeps the session's last true bar; the vol index, fetched as a quote only, has no value at all.
    assert ctx.price == close_of("2026-11-24T15:19:00Z", "^NDX")
    assert ctx.vol_index is None and ctx.iv_rank is None


# The VIX reads -1 for five bars (07:20 to 07:24 PT); the day's regime is LOW there (15.4).
NEGATIVE_VIX = {(f"2026-11-24T15:2{m}:00Z", "^VIX"): "-1,-1,-1,-1.0" for m in range(5)}


def test_a_vix_of_minus_one_is_no_regime_in_the_loop_and_is_logged_once(tmp_path, caplog):
    service = make_service(tmp_path, ReplayProvider(bad_replay(tmp_path, NEGATIVE_VIX)))
    seen: list[tuple[str, float | None, str | None]] = []

    def on_cycle(now):
        snap = service.snapshot
        if snap is not None and "NDX" in snap.contexts:
            ctx = snap.contexts["NDX"]
            seen.append((now.strftime("%H:%M"), ctx.vix, ctx.regime))

    with caplog.at_level(logging.DEBUG):
        run_replay(service, utc("2026-11-24T15:18:00Z"), utc("2026-11-24T15:27:00Z"), on_cycle)
    assert all(vix is None or vix > 0 for _, vix, _ in seen), seen
    assert {regime for _, _, regime in seen} == {"low", None}, seen  # never VERY_LOW from a VIX of -1
    assert seen[-1][1:] == (close_of("2026-11-24T15:27:00Z", "^VIX"), "low")  # the VIX back: LOW again
    # Each bad bar counted once; the market task never failed.
    assert value(service, "spreadwatch_source_errors_total", {"source": "^VIX", "kind": "invalid"}) == 5
    assert value(service, "spreadwatch_source_errors_total", {"source": "^VIX", "kind": "nan"}) == 0
    assert value(service, "spreadwatch_task_errors_total", {"task": "market"}) == 0
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == FETCH]
    warned = [m for level, m in messages if level == "WARNING"]
    assert warned == ["market data ^VIX: invalid (bar at 2026-11-24T15:20:00Z: close must be > 0, got -1)"]
    assert [m for level, m in messages if level == "INFO"] == [
        "market data ^VIX: recovered after 5 failed fetches (invalid)"]
    events = [r.getMessage() for r in caplog.records if r.name == EVENTS]
    assert not [line for line in events if "Regime change" in line or "VERY_LOW" in line], events


def status(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["status", "--ticker", "NDX", "--json", *args])
    assert result.exit_code == 0, result.output
    return result.exit_code, json.loads(result.stdout)


def test_status_at_an_instant_on_a_replay_with_bad_rows_answers_with_them_unknown(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("SPREADWATCH_CONFIG", "")
    path = bad_replay(tmp_path, {("2026-11-24T15:20:00Z", "^NDX"): "20449.92,20469.63,20435.17,0",
                                 ("2026-11-23T21:00:00Z", "^NDX"): "20475.55,20483.12,20472.43,0", **NEGATIVE_VIX})
    source = ("--source", f"replay:{path}", "--db", str(tmp_path / "book.db"))
    _, data = status(*source, "--at", "2026-11-24T15:22:00Z")
    # The VIX bars of 07:20-07:22 PT read -1: the last true one (07:19, 3 min old) stands, and so does LOW.
    assert data["vix"] == close_of("2026-11-24T15:19:00Z", "^VIX") and data["regime"] == "low"
    assert data["sources"]["^VIX"]["up"] is False and data["sources"]["^VIX"]["errors"] == {"invalid": 3}
    # The 0 close of 11-23 is no previous close; the 0 close of 07:20 PT is no price.
    assert data["prev_close"] is None and data["change_ratio"] is None
    assert data["price"] == close_of("2026-11-24T15:22:00Z", "^NDX") and data["flow_0dte"] is not None
    assert data["sources"]["^NDX"]["errors"] == {"invalid": 2} and data["sources"]["^NDX"]["up"] is True
