"""The replay provider: bars visible from their stamp on, daily history, file errors named, the bundled sample."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from spreadwatch.config import bundled_path
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.edges.providers import ProviderError, make_provider
from spreadwatch.edges.providers.replay import ReplayProvider
from spreadwatch.edges.providers.yahoo import YahooProvider
from spreadwatch.errors import DataError, InputError

ROOT = Path(__file__).resolve().parents[1]
HEADER = "timestamp,symbol,open,high,low,close,volume\n"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


@pytest.fixture
def small(tmp_path: Path) -> ReplayProvider:
    body = (
        "# a comment line\n"
        "2026-11-20T21:00:00Z,^NDX,20000,20100,19900,20050,0\n"  # daily bar stamped at the close
        "2026-11-23,^NDX,20050,20300,20000,20200,0\n"  # a bare date: a daily bar
        "2026-11-24T14:31:00Z,^NDX,20200,20210,20190,20205,0\n"
        "2026-11-24T14:32:00Z,^NDX,20205,20215,20200,20210.5,0\n"
        "2026-11-24T14:33:00Z,^NDX,20210,20211,20190,,0\n"  # blank close
        "2026-11-24T14:31:00Z,QQQ,490,491,489,490.5,1000\n"
        "2026-11-24T14:32:00Z,QQQ,490.5,491,490,490.8,1500\n"
    )
    return ReplayProvider(write(tmp_path, body))


def test_a_bar_is_visible_from_its_stamp_on_never_before(small):
    assert small.latest("^NDX", utc("2026-11-24T14:31:59Z")).price == 20205
    at_stamp = small.latest("^NDX", utc("2026-11-24T14:32:00Z"))
    assert at_stamp.price == 20210.5
    assert at_stamp.time == utc("2026-11-24T14:32:00Z")


def test_no_bar_yet_is_an_empty_failure(small):
    with pytest.raises(ProviderError) as info:
        small.latest("QQQ", utc("2026-11-24T14:30:59Z"))
    assert info.value.kind == "empty"
    with pytest.raises(ProviderError) as info:
        small.latest("^VIX", utc("2026-11-24T15:00:00Z"))
    assert info.value.kind == "empty"


def test_a_blank_close_is_nan_not_a_number_made_up(small):
    quote = small.latest("^NDX", utc("2026-11-24T14:40:00Z"))
    assert math.isnan(quote.price)
    assert not quote.finite


def test_intraday_bars_of_a_session_up_to_now(small):
    bars = small.intraday("^NDX", date(2026, 11, 24), utc("2026-11-24T14:32:30Z"))
    assert [b.close for b in bars] == [20205, 20210.5]
    assert [b.volume for b in small.intraday("QQQ", date(2026, 11, 24), utc("2026-11-24T15:00:00Z"))] == [1000, 1500]
    # A date with only a daily bar has no intraday bars.
    assert small.intraday("^NDX", date(2026, 11, 23), utc("2026-11-24T15:00:00Z")) == []


def test_daily_history_aggregates_intraday_days_and_keeps_daily_rows(small):
    bars = small.daily("^NDX", date(2026, 11, 25), 10)
    assert [b.day for b in bars] == [date(2026, 11, 20), date(2026, 11, 23), date(2026, 11, 24)]
    assert bars[1].close == 20200 and bars[1].high == 20300
    today = bars[2]
    assert (today.open, today.high, today.low) == (20200, 20215, 20190)
    assert math.isnan(today.close)  # the last bar's close is blank: reported, not replaced
    assert [b.day for b in small.daily("^NDX", date(2026, 11, 24), 1)] == [date(2026, 11, 23)]
    qqq = small.daily("QQQ", date(2026, 11, 25), 5)
    assert qqq[0].volume == 2500 and qqq[0].close == 490.8


def test_bare_date_rows_become_visible_at_16_00_eastern(small):
    with pytest.raises(ProviderError):
        small.latest("^NDX", utc("2026-11-20T20:59:59Z"))
    assert small.latest("^NDX", utc("2026-11-23T20:59:59Z")).price == 20050
    assert small.latest("^NDX", utc("2026-11-23T21:00:00Z")).price == 20200


@pytest.mark.parametrize("body,message", [
    ("2026-11-24T14:31:00Z,^NDX,1,2,0,abc,0\n", "bars.csv:2: column close: not a number"),
    ("2026-11-24 14:31,^NDX,1,2,0,1,0\n", "bars.csv:2: column timestamp: no time zone"),
    ("yesterday,^NDX,1,2,0,1,0\n", "bars.csv:2: column timestamp: not ISO 8601"),
    ("2026-11-24T14:31:00Z,^NDX,1,2\n", "bars.csv:2: expected 7 fields"),
    ("2026-11-24T14:31:00Z,,1,2,0,1,0\n", "bars.csv:2: column symbol: blank"),
])
def test_bad_rows_name_the_file_line_and_column(tmp_path, body, message):
    with pytest.raises(DataError) as info:
        ReplayProvider(write(tmp_path, body))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_columns_and_missing_file_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="missing column.*volume"):
        ReplayProvider(write(tmp_path, "", header="timestamp,symbol,open,high,low,close\n"))
    with pytest.raises(DataError, match="not found"):
        ReplayProvider(tmp_path / "nope.csv")


def test_default_start_is_the_open_of_the_replayed_day(small):
    assert small.default_start(MarketCalendar()) == utc("2026-11-24T14:30:00Z")


def test_make_provider_specs():
    bundled = make_provider(None)
    assert isinstance(bundled, ReplayProvider) and bundled.label == "replay"
    assert "SYNTHETIC" in bundled.description and "bundled" in bundled.description
    assert isinstance(make_provider("yahoo"), YahooProvider)  # constructing it makes no request
    assert make_provider("yahoo").label == "live"
    with pytest.raises(InputError, match="replay:FILE needs a file"):
        make_provider("replay:")
    with pytest.raises(InputError, match="unknown --source 'bloomberg'"):
        make_provider("bloomberg")
    with pytest.raises(DataError, match="not found"):
        make_provider("replay:/no/such/file.csv")


# ---- the bundled sample -------------------------------------------------------------------------------------

NDX_REPLAY = ROOT / "tests" / "data" / "ndx" / "replay_sample.csv"


@pytest.fixture(scope="module")
def sample() -> ReplayProvider:
    """The NDX replay day (synthetic, 2026-11-24): the loop and market tests' fixture."""
    return ReplayProvider(NDX_REPLAY, bundled=True)


def test_bundled_sample_is_small_and_labelled_synthetic():
    path = bundled_path("replay_sample.csv")
    assert path.stat().st_size < 3_000_000
    head = path.read_text(encoding="utf-8").splitlines()[:5]
    assert any("SYNTHETIC" in line for line in head) and any("REAL daily history" in line for line in head)


def test_bundled_day_is_spx_on_the_real_history_and_opens_at_its_last_close():
    from arch.data import sp500, vix

    bundled = ReplayProvider(bundled_path("replay_sample.csv"), bundled=True)
    day = date(2019, 1, 2)
    daily = bundled.daily("^GSPC", day, 400)
    real = sp500.load().loc[: "2018-12-31"].iloc[-len(daily):]
    assert [d.day for d in daily] == [ts.date() for ts in real.index]
    assert [d.close for d in daily] == [round(float(c), 2) for c in real["Close"]]
    levels = vix.load()["vix"]
    assert {d.day: d.close for d in bundled.daily("^VIX", day, 400)}[date(2018, 12, 31)] == levels["2018-12-31"]
    assert len(bundled.daily("^VIX", day, 400)) >= 260  # IV rank: 252 closes
    end = utc("2019-01-02T21:00:00Z")
    spx = bundled.intraday("^GSPC", day, end)
    assert len(spx) == 390 and spx[0].time == utc("2019-01-02T14:31:00Z")
    assert spx[0].close == pytest.approx(2506.85 * 1.0025, rel=2e-3)  # a gap up from the last real close
    vix_day = [b.close for b in bundled.intraday("^VIX", day, end)]
    assert vix_day[0] < 15.5 and min(vix_day[81:]) > 16.5  # low at the open, medium from mid-morning
    cal = MarketCalendar()
    prior = cal.sessions_in_range(day - timedelta(days=40), day - timedelta(days=1))[-20:]
    assert all(bundled.intraday("SPY", d, end) for d in prior)  # the volume ratio's 20 sessions


@pytest.mark.slow  # over 2 s: a real process or a whole replayed day; the full suite runs it
def test_bundled_day_is_reproducible_from_its_script(tmp_path):
    out = tmp_path / "sample.csv"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_replay_sample.py"), str(out)], check=True,
                   capture_output=True)
    assert out.read_bytes() == bundled_path("replay_sample.csv").read_bytes()


def test_bundled_sample_has_a_full_session_of_the_four_symbols(sample):
    day = date(2026, 11, 24)
    end = utc("2026-11-24T21:00:00Z")
    for symbol in ("^NDX", "^VIX", "^VXN", "QQQ"):
        bars = sample.intraday(symbol, day, end)
        assert len(bars) == 390, symbol
        assert bars[0].time == utc("2026-11-24T14:31:00Z") and bars[-1].time == end
    ndx = [b.close for b in sample.intraday("^NDX", day, end)]
    assert min(ndx) >= 20_000 and max(ndx) <= 21_000


def test_bundled_vix_crosses_16_with_room_for_the_hysteresis(sample):
    vix = [b.close for b in sample.intraday("^VIX", date(2026, 11, 24), utc("2026-11-24T21:00:00Z"))]
    assert vix[0] < 15.5
    crossing = next(i for i, v in enumerate(vix) if v >= 16.5)
    assert 30 <= crossing <= 120  # mid-morning: between 10:00 and 11:30 ET
    assert min(vix[crossing:]) > 16.0 + 0.3  # it does not come back to flap around the boundary


def test_bundled_history_is_enough_for_iv_rank_bands_and_volume(sample):
    day = date(2026, 11, 24)
    for symbol in ("^VIX", "^VXN"):
        assert len(sample.daily(symbol, day, 400)) >= 260
    assert len(sample.daily("^NDX", day, 400)) >= 120
    cal = MarketCalendar()
    prior = cal.sessions_in_range(day - timedelta(days=40), day - timedelta(days=1))[-20:]
    assert all(sample.intraday("QQQ", d, utc("2026-11-25T00:00:00Z")) for d in prior)
    # The previous session has minute bars of the VIX, for the regime rebuild at start.
    assert len(sample.intraday("^VIX", date(2026, 11, 23), utc("2026-11-25T00:00:00Z"))) == 390


def test_ndx_fixture_is_reproducible_from_its_script(tmp_path):
    out = tmp_path / "sample.csv"
    subprocess.run([sys.executable, str(ROOT / "tests" / "data" / "ndx" / "make_replay_sample.py"), str(out)],
                   check=True, capture_output=True)
    assert out.read_bytes() == NDX_REPLAY.read_bytes()


def test_sessions_are_cut_at_eastern_midnight_across_the_clock_changes(tmp_path: Path):
    # Bars every 30 minutes over both 2026 clock changes (8 March, 1 November): each session's bars and each daily
    # bar are the rows whose own ET date is that session, as converting every stamp one by one says.
    from spreadwatch.domain.vocabulary import ET

    stamps = [datetime(2026, 3, 6, tzinfo=UTC) + timedelta(minutes=30 * i) for i in range(6 * 48)]
    stamps += [datetime(2026, 10, 30, tzinfo=UTC) + timedelta(minutes=30 * i) for i in range(6 * 48)]
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    lines += [f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},X,{i},{i},{i},{i},1" for i, t in enumerate(stamps)]
    path = tmp_path / "dst.csv"
    path.write_text("\n".join(lines) + "\n")
    provider = ReplayProvider(path)
    days = sorted({t.astimezone(ET).date() for t in stamps})
    end = stamps[-1] + timedelta(days=1)
    for day in days:
        expected = [t for t in stamps if t.astimezone(ET).date() == day]
        assert [b.time for b in provider.intraday("X", day, end)] == expected, day
    daily = provider.daily("X", days[-1] + timedelta(days=1), len(days))
    assert [(d.day, d.volume) for d in daily] == \
        [(day, float(sum(1 for t in stamps if t.astimezone(ET).date() == day))) for day in days]
