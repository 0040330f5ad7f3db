"""The market watcher: last good values and their age, sources down by kind, staleness, IV rank, volume ratio,
flow, trend, and a regime rebuilt at start that equals a loop running since yesterday."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from spreadwatch.app.watcher import MarketWatcher
from spreadwatch.config import Config
from spreadwatch.domain.market_rules import auto_trend, flow_of, iv_rank_percentile
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.edges.providers import Bar, DailyBar, ProviderError, Quote

ET = ZoneInfo("America/New_York")
DAY = date(2026, 11, 24)
PREV = date(2026, 11, 23)
CAL = MarketCalendar("America/Los_Angeles")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class FakeProvider:
    """In-memory bars; `fail[symbol]` makes every call for that symbol fail (a kind, or an exception)."""

    label = "replay"
    description = "fake"

    def __init__(self) -> None:
        self.minute: dict[str, list[Bar]] = {}
        self.days: dict[str, list[DailyBar]] = {}
        self.fail: dict[str, str | BaseException] = {}

    def _check(self, symbol: str) -> None:
        failure = self.fail.get(symbol)
        if isinstance(failure, BaseException):
            raise failure
        if failure:
            raise ProviderError(symbol, failure)

    def latest(self, symbol: str, now: datetime) -> Quote:
        self._check(symbol)
        bars = [b for b in self.minute.get(symbol, []) if b.time <= now]
        if not bars:
            raise ProviderError(symbol, "empty")
        return Quote(symbol, bars[-1].time, bars[-1].close, bars[-1].volume)

    def intraday(self, symbol: str, session: date, now: datetime) -> list[Bar]:
        self._check(symbol)
        return [b for b in self.minute.get(symbol, []) if b.time.astimezone(ET).date() == session and b.time <= now]

    def daily(self, symbol: str, before: date, count: int) -> list[DailyBar]:
        self._check(symbol)
        return [d for d in self.days.get(symbol, []) if d.day < before][-count:]

    # ---- building data ----
    def session_bars(self, symbol: str, day: date, value: Callable[[int], float], volume: float | None = None,
                     until: datetime | None = None) -> None:
        open_, close = CAL.open_close(day)
        minutes = int((close - open_).total_seconds() // 60)
        bars = [Bar(open_ + timedelta(minutes=i + 1), value(i), volume) for i in range(minutes)]
        if until is not None:
            bars = [b for b in bars if b.time <= until]
        self.minute.setdefault(symbol, []).extend(bars)
        self.minute[symbol].sort(key=lambda b: b.time)

    def daily_closes(self, symbol: str, closes: list[float], before: date = DAY) -> None:
        days = CAL.sessions_in_range(before - timedelta(days=2 * len(closes) + 10), before - timedelta(days=1))
        days = days[-len(closes):]
        self.days[symbol] = [DailyBar(d, c, c, c, c, None) for d, c in zip(days, closes, strict=True)]


def standard_market(vix: Callable[[int], float] = lambda i: 15.0) -> FakeProvider:
    """A calm 2026-11-24: NDX 20,100 vs a previous close of 20,000, VIX 15, VXN 18, QQQ volume steady."""
    p = FakeProvider()
    p.daily_closes("^NDX", [20_000.0 / 1.003 ** (199 - i) for i in range(200)])  # +0.3 % a session
    p.daily_closes("^VIX", [15.0] * 300)
    p.daily_closes("^VXN", [float(10 + i % 20) for i in range(300)])
    p.daily_closes("QQQ", [480.0] * 300)
    p.session_bars("^NDX", DAY, lambda i: 20_100.0)
    p.session_bars("^VIX", DAY, vix)
    p.session_bars("^VXN", DAY, lambda i: 18.0)
    p.session_bars("QQQ", DAY, lambda i: 490.0, volume=1500)
    return p


def watcher(provider: FakeProvider, ticker: str = "NDX", trend: str | None = None,
            config: Config | None = None) -> MarketWatcher:
    return MarketWatcher(config or Config(), provider, CAL, ticker, trend=trend)


# ---- failures keep the last good values, mark the source down, count by kind ---------------------------------

def test_raising_and_empty_responses_keep_the_last_good_value_and_mark_the_source_down():
    p = standard_market()
    w = watcher(p)
    first = w.update(utc("2026-11-24T15:00:00Z"))
    assert first.price == 20_100.0 and first.sources["^NDX"].up

    p.fail["^NDX"] = RuntimeError("connection reset")
    ctx = w.update(utc("2026-11-24T15:01:30Z"))
    assert ctx.price == 20_100.0  # the 15:00 bar, 90 s old: still valid
    assert ctx.sources["^NDX"].up is False
    assert ctx.sources["^NDX"].errors == {"exception": 2}  # latest and today's bars (daily history is cached)
    assert ctx.sources["^NDX"].age_seconds == 90
    assert ctx.sources["^VIX"].up is True

    p.fail["^NDX"] = "empty"
    ctx = w.update(utc("2026-11-24T15:02:00Z"))
    assert ctx.price == 20_100.0
    assert ctx.sources["^NDX"].errors["empty"] >= 1

    stale = w.update(utc("2026-11-24T15:03:01Z"))  # 181 s after the last good bar
    assert stale.price is None and stale.change_ratio is None and stale.flow is None
    assert stale.sources["^NDX"].age_seconds == 181
    assert stale.vix == 15.0  # the other sources are unaffected

    del p.fail["^NDX"]
    back = w.update(utc("2026-11-24T15:04:00Z"))
    assert back.price == 20_100.0 and back.sources["^NDX"].up


def test_partial_failure_only_the_vix_source_goes_down_then_unknown():
    p = standard_market()
    w = watcher(p)
    assert w.update(utc("2026-11-24T15:00:00Z")).regime == "low"
    p.fail["^VIX"] = "timeout"
    ctx = w.update(utc("2026-11-24T15:02:00Z"))
    assert ctx.vix == 15.0 and ctx.regime == "low"
    assert ctx.sources["^VIX"].up is False and ctx.sources["^VIX"].errors.get("timeout", 0) >= 1
    ctx = w.update(utc("2026-11-24T15:05:00Z"))
    assert ctx.vix is None and ctx.regime is None  # unknown, never a guess
    assert ctx.price == 20_100.0 and ctx.sources["^NDX"].up


def test_when_the_vix_returns_the_rule_resumes_from_the_last_known_regime():
    p = standard_market(vix=lambda i: 15.0 if i < 30 else (math.nan if i < 60 else 16.3))
    w = watcher(p)
    assert w.update(utc("2026-11-24T15:00:00Z")).regime == "low"
    assert w.update(utc("2026-11-24T15:29:00Z")).regime is None  # NaN for 29 minutes: unknown
    back = w.update(utc("2026-11-24T15:40:00Z"))
    assert back.vix == 16.3
    assert back.regime == "low"  # 16.3 is inside the buffer above 16: no flip after the gap


def test_a_nan_quote_is_counted_and_the_newest_finite_value_stands():
    p = standard_market()
    p.minute["^NDX"] = [b if b.time != utc("2026-11-24T15:00:00Z") else Bar(b.time, math.nan) for b in p.minute["^NDX"]]
    p.minute["^NDX"][28] = Bar(p.minute["^NDX"][28].time, 20_090.0)  # the 14:59 bar
    ctx = watcher(p).update(utc("2026-11-24T15:00:30Z"))
    assert ctx.price == 20_090.0
    assert ctx.sources["^NDX"].errors == {"nan": 1}
    assert ctx.sources["^NDX"].up is False


def test_nothing_is_made_up_when_every_source_fails():
    p = standard_market()
    for symbol in ("^NDX", "^VIX", "^VXN", "QQQ"):
        p.fail[symbol] = ProviderError(symbol, "rate_limit")
    ctx = watcher(p).update(utc("2026-11-24T15:00:00Z"))
    for name in ("price", "prev_close", "change_ratio", "vix", "regime", "iv_rank", "iv_percentile", "volume_ratio",
                 "flow", "flow_0dte"):
        assert getattr(ctx, name) is None, name
    assert ctx.daily_closes == ()
    assert all(not s.up and s.errors["rate_limit"] >= 1 and s.age_seconds is None for s in ctx.sources.values())
    data = ctx.to_json()
    assert data["price"] is None and data["regime"] is None and data["sources"]["^VIX"]["up"] is False


def test_nan_vix_gives_unknown_regime_not_extreme():
    p = standard_market(vix=lambda i: math.nan)
    p.days["^VIX"] = []
    ctx = watcher(p).update(utc("2026-11-24T15:00:00Z"))
    assert ctx.vix is None
    assert ctx.regime is None


# ---- staleness ------------------------------------------------------------------------------------------------

def test_outside_the_session_the_last_close_stays_valid_until_the_next_open():
    p = standard_market()
    w = watcher(p)
    after = w.update(utc("2026-11-24T23:00:00Z"))
    assert after.session == "after" and after.price == 20_100.0 and after.vix == 15.0
    assert after.sources["^NDX"].age_seconds == 7200
    night = w.update(utc("2026-11-25T12:00:00Z"))  # next morning, pre-market: still yesterday's close
    assert night.session == "pre" and night.price == 20_100.0
    opened = w.update(utc("2026-11-25T14:33:01Z"))  # the new session has no bars: 181 s past the open is too old
    assert opened.session == "open" and opened.price is None and opened.vix is None


def test_a_value_from_mid_session_is_not_the_close_and_is_unknown_after_hours():
    p = standard_market()
    p.minute["^NDX"] = [b for b in p.minute["^NDX"] if b.time <= utc("2026-11-24T18:00:00Z")]
    ctx = watcher(p).update(utc("2026-11-24T22:00:00Z"))
    assert ctx.price is None


def test_over_the_holiday_the_wednesday_close_is_still_the_value():
    p = FakeProvider()
    p.session_bars("^NDX", date(2026, 11, 25), lambda i: 20_200.0)
    ctx = watcher(p).update(utc("2026-11-26T16:00:00Z"))  # Thanksgiving
    assert ctx.session == "closed" and ctx.price == 20_200.0


# ---- IV rank and percentile on real VIX history (arch) --------------------------------------------------------

def test_iv_rank_and_percentile_pure_rule():
    closes = [10.0, 20.0, 30.0, 40.0]
    assert iv_rank_percentile(25.0, closes, window=4) == (0.5, 0.5)
    assert iv_rank_percentile(50.0, closes, window=4) == (1.0, 1.0)  # rank clipped to [0, 1]
    assert iv_rank_percentile(25.0, closes, window=5) == (None, None)  # not a full window
    assert iv_rank_percentile(None, closes, window=4) == (None, None)
    assert iv_rank_percentile(math.nan, closes, window=4) == (None, None)


@pytest.mark.parametrize("day", ["2016-06-24", "2017-05-18", "2018-10-10"])
def test_iv_rank_and_percentile_match_hand_computed_values_on_arch_vix(day):
    arch_vix = pytest.importorskip("arch.data.vix").load()["vix"]
    target = date.fromisoformat(day)
    history = [(ts.date(), float(v)) for ts, v in arch_vix.items() if ts.date() < target]
    today = float(arch_vix[day])
    # By hand: the last 252 finite closes before the day (arch's holiday rows are NaN and do not count).
    window = [v for _, v in history if math.isfinite(v)][-252:]
    low, high = min(window), max(window)
    want_rank = (today - low) / (high - low)
    want_percentile = sum(v < today for v in window) / 252

    p = FakeProvider()
    p.days["^VIX"] = [DailyBar(d, v, v, v, v, None) for d, v in history]
    p.minute["^VIX"] = [Bar(datetime.combine(target, datetime.min.time(), ET).replace(hour=10) .astimezone(UTC),
                            today)]
    now = p.minute["^VIX"][0].time + timedelta(seconds=30)
    ctx = watcher(p, ticker="SPX").update(now)  # SPX's vol index is the VIX itself
    assert ctx.vol_index == today
    assert ctx.iv_rank == pytest.approx(min(1.0, max(0.0, want_rank)), abs=1e-12)
    assert ctx.iv_percentile == pytest.approx(want_percentile, abs=1e-12)


def test_iv_rank_on_brexit_day_is_the_known_figure():
    # 2016-06-24: VIX 25.76; 252 sessions before: low 11.95, high 40.74 (2015-08-24) -> rank 0.4797, 230/252 below.
    arch_vix = pytest.importorskip("arch.data.vix").load()["vix"]
    window = [float(v) for ts, v in arch_vix.items() if ts.date() < date(2016, 6, 24) and math.isfinite(v)][-252:]
    rank, percentile = iv_rank_percentile(25.76, window)
    assert rank == pytest.approx(0.47968, abs=1e-5)
    assert percentile == pytest.approx(230 / 252)


# ---- volume ratio, flow, trend --------------------------------------------------------------------------------

def _with_prior_volume(p: FakeProvider, sessions: int, per_minute: float = 1000.0) -> None:
    for day in CAL.sessions_in_range(DAY - timedelta(days=40), DAY - timedelta(days=1))[-sessions:]:
        p.session_bars("QQQ", day, lambda i: 480.0, volume=per_minute)


def test_volume_ratio_against_the_same_time_of_day():
    p = standard_market()
    _with_prior_volume(p, 20)
    ctx = watcher(p).update(utc("2026-11-24T15:30:00Z"))
    assert ctx.volume_ratio == pytest.approx(1.5)


def test_volume_ratio_is_unknown_with_fewer_than_5_prior_sessions():
    p = standard_market()
    _with_prior_volume(p, 4)
    assert watcher(p).update(utc("2026-11-24T15:30:00Z")).volume_ratio is None
    p2 = standard_market()
    _with_prior_volume(p2, 5)
    assert watcher(p2).update(utc("2026-11-24T15:30:00Z")).volume_ratio == pytest.approx(1.5)


def test_volume_ratio_is_unknown_when_todays_volume_bars_are_stale():
    p = standard_market()
    _with_prior_volume(p, 20)
    p.minute["QQQ"] = [b for b in p.minute["QQQ"] if b.time <= utc("2026-11-24T15:00:00Z")]
    assert watcher(p).update(utc("2026-11-24T15:30:00Z")).volume_ratio is None
    assert watcher(p).update(utc("2026-11-24T15:02:00Z")).volume_ratio == pytest.approx(1.5)


def test_flow_dead_bands():
    assert flow_of(0.0009, 0.001) == "flat"
    assert flow_of(0.0011, 0.001) == "up"
    assert flow_of(-0.0011, 0.001) == "down"
    assert flow_of(None, 0.001) is None


def test_flow_vs_previous_close_and_over_the_last_10_minutes():
    p = standard_market()
    # 20,000 -> 19,970 (-0.15 %): down; the last 10 minutes 19,990 -> 19,970 (-0.1 %): down for 0 DTE.
    p.minute["^NDX"] = []
    p.session_bars("^NDX", DAY, lambda i: 19_990.0 if i < 50 else 19_970.0)
    ctx = watcher(p).update(utc("2026-11-24T15:25:00Z"))  # minute 55
    assert ctx.prev_close == 20_000.0
    assert ctx.change_ratio == pytest.approx(-0.0015)
    assert ctx.flow == "down" and ctx.flow_0dte == "down"
    calm = watcher(p).update(utc("2026-11-24T16:00:00Z"))
    assert calm.flow_0dte == "flat"


def test_trend_auto_rule_on_daily_closes():
    assert auto_trend([100.0] * 19 + [102.0]) == "up"  # 2 % above... its own 20-day mean 100.1
    assert auto_trend([100.0] * 19 + [98.0]) == "down"
    assert auto_trend([100.0] * 19 + [100.5]) == "sideways"
    assert auto_trend([100.0] * 18) is None
    p = standard_market()  # the NDX closes rise 0.3 % a session: the last is ~2.9 % above its 20-day mean
    assert watcher(p, trend="auto").update(utc("2026-11-24T15:00:00Z")).trend == "up"
    assert watcher(p).update(utc("2026-11-24T15:00:00Z")).trend == "sideways"  # config default


# ---- regime state: one-shot equals loop -----------------------------------------------------------------------

def _hovering_vix() -> FakeProvider:
    """Previous session 15.0-15.8 (low); today opens 16.2-16.4 (inside the buffer), crosses to 16.8 at minute 90,
    sags to 16.2 (still medium), then 15.3 from minute 300 (back to low)."""
    p = standard_market()
    p.minute["^VIX"] = []
    p.session_bars("^VIX", PREV, lambda i: 15.0 + 0.8 * ((i % 40) / 40))

    def today(i: int) -> float:
        if i < 90:
            return 16.2 + (0.2 if i % 2 else 0.0)
        if i < 150:
            return 16.8
        if i < 300:
            return 16.2
        return 15.3

    p.session_bars("^VIX", DAY, today)
    p.days["^VIX"] = [d for d in p.days["^VIX"] if d.day < PREV] + [DailyBar(PREV, 15, 15.8, 15, 15.4, None)]
    return p


@pytest.mark.slow  # a loop stepped minute by minute over two sessions: about 10 s of CPU
def test_one_shot_regime_equals_a_loop_running_since_yesterday():
    p = _hovering_vix()
    loop = watcher(p)
    checkpoints = {utc(t) for t in ("2026-11-24T15:00:00Z", "2026-11-24T16:30:00Z", "2026-11-24T18:00:00Z",
                                    "2026-11-24T20:00:00Z", "2026-11-24T23:00:00Z")}
    now = utc("2026-11-23T14:35:00Z")
    seen = 0
    while now <= utc("2026-11-24T23:00:00Z"):
        ctx = loop.update(now)
        if now in checkpoints:
            seen += 1
            one_shot = watcher(p).update(now)
            assert (one_shot.regime, one_shot.previous_regime, one_shot.regime_changed_at) == \
                (ctx.regime, ctx.previous_regime, ctx.regime_changed_at), now
        now += timedelta(minutes=1) if CAL.is_open(now) else timedelta(minutes=30)
    assert seen == len(checkpoints)

    assert watcher(p).update(utc("2026-11-24T15:00:00Z")).regime == "low"  # 16.2-16.4 after a low day: no flip
    crossed = watcher(p).update(utc("2026-11-24T16:30:00Z"))
    assert crossed.regime == "medium" and crossed.previous_regime == "low"
    assert crossed.regime_changed_at == utc("2026-11-24T16:01:00Z")  # minute 90 ends at 11:01 ET
    assert watcher(p).update(utc("2026-11-24T18:00:00Z")).regime == "medium"  # 16.2 is inside the buffer
    back = watcher(p).update(utc("2026-11-24T20:00:00Z"))
    assert back.regime == "low" and back.previous_regime == "medium"


def test_loop_with_a_slow_cycle_still_steps_every_vix_bar():
    p = _hovering_vix()
    slow = watcher(p)
    slow.update(utc("2026-11-24T14:40:00Z"))
    ctx = slow.update(utc("2026-11-24T17:00:00Z"))  # one cycle over the crossing
    assert ctx.regime == "medium" and ctx.regime_changed_at == utc("2026-11-24T16:01:00Z")


# ---- the bundled replay day -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundled():
    from exporter_support import NDX_REPLAY
    from spreadwatch.edges.providers.replay import ReplayProvider

    return ReplayProvider(NDX_REPLAY, bundled=True)


def test_bundled_day_context(bundled):
    w = MarketWatcher(Config(), bundled, CAL, "NDX")
    morning = w.update(utc("2026-11-24T14:45:00Z"))
    assert morning.data_mode == "replay" and morning.regime == "low"
    assert len(morning.daily_closes) >= 110 and len(morning.daily_opens) == len(morning.daily_closes)
    assert morning.iv_rank is not None and 0 <= morning.iv_rank <= 1
    assert morning.volume_ratio is not None
    later = w.update(utc("2026-11-24T16:00:00Z"))
    assert later.regime == "medium" and later.previous_regime == "low"
    assert later.regime_changed_at is not None and later.regime_changed_at.astimezone(ET).hour == 10
    next_day = w.update(utc("2026-11-25T14:45:00Z"))  # the replay has run out: staleness takes its course
    assert next_day.price is None and next_day.regime is None
    assert next_day.sources["^NDX"].age_seconds > 180


def test_context_json_has_the_documented_keys(bundled):
    data = MarketWatcher(Config(), bundled, CAL, "NDX").update(utc("2026-11-24T16:00:00Z")).to_json()
    for key in ("ticker", "time", "session", "market_open", "price", "change_ratio", "vix", "regime", "iv_rank",
                "iv_percentile", "volume_ratio", "trend", "flow", "sources"):
        assert key in data
    assert data["time"] == "2026-11-24T16:00:00Z"
    assert data["session"] == "open" and data["market_open"] is True
    assert set(data["sources"]) == {"^NDX", "^VIX", "^VXN", "QQQ"}
    assert all(set(s) >= {"up", "age_seconds"} for s in data["sources"].values())
