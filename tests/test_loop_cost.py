"""What one loop cycle costs: shared symbols fetched once per cycle whatever the number of tickers, the volume ratio
kept up to date from new bars instead of re-walking twenty sessions, the positions task reading only the open
positions and what changed. Each is held equal to the straightforward computation it replaces."""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from exporter_support import CountingProvider, Running, make_service
from spreadwatch.app.watcher import VOLUME_BAR_TOLERANCE, VOLUME_MIN_SESSIONS, Instants, MarketWatcher
from spreadwatch.config import Config, Ticker, bundled_path
from spreadwatch.domain.market_rules import PriorVolumes, SessionVolume, cumulative_volume
from spreadwatch.domain.positions import PositionInput, summarize, validate
from spreadwatch.edges.providers import Bar
from spreadwatch.edges.providers.replay import ReplayProvider
from spreadwatch.edges.store import BookReader, PositionBook, read_positions

# The bundled replay day (SYNTHETIC SPX, 2019-01-02): 10:00 ET, an hour into the session.
SPX_DAY = datetime(2019, 1, 2, 15, 0, tzinfo=UTC)


def _sharing_config(count: int) -> Config:
    """SPX and `count - 1` more tickers on the same symbols (^GSPC, ^VIX, SPY), as XSP shares SPX's."""
    spx = Ticker("^GSPC", "^VIX", "SPY", 5.0)
    return Config(tickers={"SPX": spx, **{f"SPX{i}": spx for i in range(1, count)}})


def _questions_per_cycle(tmp_path, count: int, cycles: int) -> list[Counter]:
    config = _sharing_config(count)
    provider = CountingProvider()
    service = make_service(tmp_path, provider, start=SPX_DAY, config=config, tickers=tuple(config.tickers))
    per_cycle = []
    with Running(service) as running:
        per_cycle.append(Counter(provider.take()))  # the first cycle
        for _ in range(cycles - 1):
            running.step()
            per_cycle.append(Counter(provider.take()))
    assert all(service.snapshot.contexts[t].price is not None for t in config.tickers)
    return per_cycle


def test_a_symbol_shared_by_several_tickers_is_fetched_once_per_cycle(tmp_path):
    one = _questions_per_cycle(tmp_path / "one", 1, 3)
    five = _questions_per_cycle(tmp_path / "five", 5, 3)
    for cycle, asked in enumerate(five):
        # Each question (method, symbol, arguments) once per cycle ...
        assert max(asked.values()) == 1, (cycle, [q for q, n in asked.items() if n > 1])
        # ... and five tickers on the same symbols ask exactly what one ticker asks.
        assert asked == one[cycle]
    later = five[-1]
    assert sum(1 for q in later if q[1] == "^VIX") == 2  # its newest quote and today's bars, for every ticker
    assert {q[1] for q in later} == {"^GSPC", "^VIX", "SPY"}


class _CountingInstants(Instants):
    def __init__(self, config, calendar) -> None:
        super().__init__(config, calendar)
        self.asked: list[datetime] = []

    def _ask(self, now):
        self.asked.append(now)
        return super()._ask(now)


def test_the_calendar_is_asked_once_per_instant_for_every_ticker_and_gives_what_it_says(cal):
    # Before the open, in the entry window, later in the session, after the close, and outside the exchange
    # calendar.
    instants = [datetime(2019, 1, 2, h, m, tzinfo=UTC) for h, m in ((14, 0), (15, 0), (17, 31), (21, 30))]
    instants.append(datetime(1990, 1, 2, 15, 0, tzinfo=UTC))
    config = _sharing_config(5)
    provider = ReplayProvider(bundled_path("replay_sample.csv"), bundled=True)
    shared = _CountingInstants(config, cal)
    watchers = [MarketWatcher(config, provider, cal, t, instants=shared) for t in config.tickers]
    alone = MarketWatcher(config, ReplayProvider(bundled_path("replay_sample.csv"), bundled=True), cal, "SPX")
    hours = config.hours
    for now in instants:
        contexts = [w.update(now) for w in watchers]
        # The same context as a watcher that asks the calendar on its own ...
        own = alone.update(now)
        assert all(c.to_json() | {"ticker": "SPX"} == own.to_json() for c in contexts), now
        assert {c.session_open for c in contexts} == {own.session_open}
        # ... and what the calendar says of that instant.
        fact = shared.at(now)
        assert fact.phase == cal.session_phase(now) == contexts[0].session
        assert fact.market_open == cal.within_local_hours(now, hours.trading_start, hours.trading_end)
        assert fact.entry_window_open == cal.within_local_hours(now, hours.entry_start, hours.entry_end)
        assert fact.seconds_to_close == cal.seconds_to_close(now)
        if fact.session is not None:
            assert fact.session[0] == cal.current_or_last_session(now)
            assert fact.session[1:] == cal.open_close(fact.session[0])
    assert shared.asked == instants  # once per instant, whatever the number of tickers
    assert {c.session for c in contexts} == {"unknown"}
    assert [shared.at(now).entry_window_open for now in instants[:4]] == [False, True, False, False]


# ---- the volume ratio -----------------------------------------------------------------------------------------
def _volume_ratio_by_walking(provider, calendar, config, symbol: str, now: datetime) -> float | None:
    """The volume ratio as the loop computed it before it kept running totals: every cycle, today's bars and the
    bars of each of the twenty prior sessions walked afresh."""
    stale_after = timedelta(seconds=config.market.stale_after_seconds)
    session = calendar.current_or_last_session(now)
    open_, close = calendar.open_close(session)
    until = min(now, close)
    if until - open_ <= timedelta(0):
        return None
    today = provider.intraday(symbol, session, until)
    times = [b.time for b in today if b.time <= until]
    if not times or (calendar.is_open(now) and now - max(times) > stale_after):
        return None
    current = cumulative_volume(today, until)
    if current is None:
        return None
    elapsed = max(times) - open_
    window = config.market.volume_window_sessions
    days = calendar.sessions_in_range(session - timedelta(days=3 * window), session - timedelta(days=1))
    history = []
    for day in days[-window:]:
        day_open, day_close = calendar.open_close(day)
        at = day_open + elapsed
        if at > day_close:
            continue
        upto = [b for b in provider.intraday(symbol, day, day_close) if b.time <= at]
        if not upto or at - upto[-1].time > VOLUME_BAR_TOLERANCE:
            continue
        total = cumulative_volume(upto, at)
        if total is not None:
            history.append(total)
    if len(history) < VOLUME_MIN_SESSIONS:
        return None
    mean = sum(history) / len(history)
    return current / mean if mean > 0 else None


def _compare_volume_ratios(cal, instants: list[datetime]) -> list[float | None]:
    config = Config()
    provider = ReplayProvider(bundled_path("replay_sample.csv"), bundled=True)
    watcher = MarketWatcher(config, provider, cal, "SPX")
    ratios = []
    for now in instants:
        kept = watcher.update(now).volume_ratio
        assert kept == _volume_ratio_by_walking(provider, cal, config, "SPY", now), now  # the same number
        ratios.append(kept)
    return ratios


def test_incremental_volume_ratio_equals_walking_the_bars_on_the_bundled_day(cal):
    open_, close = cal.open_close(date(2019, 1, 2))
    # From before the open (the last session's ratio at its close) to after the close, every 23 minutes.
    instants = [open_ - timedelta(minutes=5) + timedelta(minutes=23 * i) for i in range(19)]
    assert instants[-1] > close
    ratios = _compare_volume_ratios(cal, instants)
    assert all(r is not None for r in ratios) and len(set(ratios)) > 15


def test_incremental_volume_ratio_equals_walking_the_bars_over_a_month_of_sessions(cal):
    # One watcher through 18 sessions of SPY minute bars: the history grows from none to 17 sessions (unknown
    # below five), a half session (Christmas Eve) and a new session every few instants.
    instants = []
    for day in cal.sessions_in_range(date(2018, 12, 3), date(2019, 1, 2)):
        open_, close = cal.open_close(day)
        instants += [open_ + timedelta(minutes=m) for m in (1, 211)] + [close + timedelta(minutes=10)]
    ratios = _compare_volume_ratios(cal, instants)
    assert ratios[:4 * 3] == [None] * 12  # fewer than five prior sessions with bars (Nov 30 to Dec 7)
    assert all(r is not None for r in ratios[4 * 3:])
    assert len(set(ratios[4 * 3:])) > 40  # a different number nearly every time


def test_running_volume_totals_start_again_when_a_kept_bar_was_revised():
    t0 = datetime(2019, 1, 2, 14, 31, tzinfo=UTC)
    bars = [Bar(t0 + timedelta(minutes=i), 100.0, 10.0 * (i + 1)) for i in range(3)]
    kept = SessionVolume(bars[:2])
    assert kept.at(t0 + timedelta(minutes=5)) == (bars[1].time, 30.0)
    assert kept.continued_by(bars)
    assert not kept.continued_by([bars[0], Bar(bars[1].time, 100.0, 25.0), bars[2]])  # the filling bar grew
    assert not kept.continued_by(bars[:1])
    assert kept.at(t0 - timedelta(minutes=1)) is None
    assert SessionVolume([Bar(t0, 100.0, None)]).at(t0) == (t0, None)


def _prior_by_walking(sessions, elapsed: timedelta) -> tuple[int, float | None]:
    """The prior sessions' count and mean volume `elapsed` after the open, walking each session's bars."""
    history = []
    for open_, close, bars in sessions:
        at = open_ + elapsed
        upto = [b for b in bars if b.time <= at]
        if at > close or not upto or at - upto[-1].time > VOLUME_BAR_TOLERANCE:
            continue
        total = cumulative_volume(upto, at)
        if total is not None:
            history.append(total)
    return len(history), (sum(history) / len(history) if history else None)


def test_prior_sessions_mean_by_time_of_day_equals_walking_their_bars():
    # Worked out once per session day, looked up every cycle: the same count and the same mean (to the bit) as
    # walking every prior session's bars, at every instant where an answer could change and just either side of it:
    # bars off the minute, gaps longer than the tolerance, bars without a volume, a session without bars, a half day.
    day0 = datetime(2018, 12, 3, 14, 30, tzinfo=UTC)
    sessions = []
    for k in range(7):
        open_ = day0 + timedelta(days=k)
        close = open_ + (timedelta(hours=3, minutes=30) if k == 4 else timedelta(hours=6, minutes=30))
        minutes = [m for m in range(0, 390, 1 + k % 3) if not (k == 2 and 100 <= m < 140)]
        bars = [Bar(open_ + timedelta(minutes=m, seconds=7 * (k == 3)), 100.0,
                    None if (k == 5 and m < 30) or m % 37 == 0 else 1000.0 + 17.3 * m * (k + 1))
                for m in minutes if open_ + timedelta(minutes=m) <= close]
        sessions.append((open_, close, [] if k == 6 else bars))
    prior = PriorVolumes([(o, c, SessionVolume(b)) for o, c, b in sessions], VOLUME_BAR_TOLERANCE)
    offsets = {b.time - o for o, _, bars in sessions for b in bars} | {c - o for o, c, _ in sessions}
    probes = {x + d for x in offsets | {x + VOLUME_BAR_TOLERANCE for x in offsets}
              for d in (-timedelta(microseconds=1), timedelta(0), timedelta(microseconds=1), timedelta(seconds=20))}
    probes |= {-timedelta(minutes=1), timedelta(hours=7)}
    answers = set()
    for elapsed in sorted(probes):
        assert prior.at(elapsed) == _prior_by_walking(sessions, elapsed), elapsed
        answers.add(prior.at(elapsed))
    assert len({count for count, _ in answers}) >= 5 and len(answers) > 300  # the probes reach every case


# ---- the positions task -----------------------------------------------------------------------------------------
BOOK_NOW = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)


def _records(count: int, *, status: str, first: int = 0) -> list:
    records = []
    for i in range(first, first + count):
        entry, _ = validate(PositionInput("NDX", "put_spread", "P98", "with_flow", 3, 1 + i % 3, 150.0 + i % 50,
                                          None, short_put=19500.0 - 10 * (i % 40), long_put=19400.0 - 10 * (i % 40)),
                            tickers=("NDX", "SPX"))
        entered = BOOK_NOW - timedelta(days=2000 - i % 2000, minutes=i % 397)
        closed = status == "closed"
        records.append((None, entry, {
            "entry_time": entered, "expiry": (entered + timedelta(days=5)).date(),
            "pnl": round((i % 17 - 9) * 13.37, 2) if closed else 0.0, "status": status,
            "pnl_updated_at": entered, "closed_at": entered + timedelta(days=3) if closed else None}))
    return records


def _matches_reading_the_whole_book(db, read) -> None:
    everything = read_positions(db)
    assert summarize(read.open_positions, closed_count=read.closed_count,
                     realized_pnl=read.realized_pnl) == summarize(everything)  # the same sums, to the bit
    assert read.open_positions == tuple(p for p in everything if p.is_open)
    closed = [p for p in everything if not p.is_open]  # the closed ones, latest close first (the day's at the front)
    assert list(read.closed_latest_first) == sorted(closed, key=lambda p: p.closed_at.isoformat(), reverse=True)


def _seen(bar: Bar) -> tuple:
    """What the loop reads of a bar, NaN as None (so equal bars compare equal)."""
    return tuple(None if isinstance(v, float) and math.isnan(v) else v
                 for v in (bar.time, bar.close, bar.volume, bar.high, bar.low))


def test_open_session_bars_judged_once_give_what_judging_them_all_gives():
    # A watcher's fetch judges only the bars that came since its last fetch of the open session. Each result is held
    # equal to judging every bar afresh, and a bar that cannot be true (high below low) is counted once, through new
    # bars, a revised newest bar and bars that no longer continue the kept ones.
    from spreadwatch.app.watcher import _Feeds

    t0 = datetime(2019, 1, 2, 14, 31, tzinfo=UTC)
    bars = [Bar(t0 + timedelta(minutes=i), 100.0 + i, 10.0, 101.0 + i, 99.0 + i) for i in range(6)]
    bars[2] = Bar(bars[2].time, 102.0, 10.0, 90.0, 110.0)  # high below low: cannot be true
    revised = Bar(bars[4].time, 104.5, 12.0, 105.0, 103.0)
    other = [Bar(t0 + timedelta(minutes=i, seconds=30), 200.0, 1.0, 201.0, 199.0) for i in range(3)]
    answers = [bars[:1], bars[:3], bars[:5], bars[:4] + [revised], bars[:4] + [revised, bars[5]], other, bars]

    class Answers:
        def intraday(self, symbol, session, now):
            return list(answers.pop(0))

    feeds = _Feeds(Answers(), ("SPY",))
    fresh = _Feeds(None, ("SPY",))
    for expected in [list(a) for a in answers]:
        feeds.begin_round()
        got = feeds.intraday("SPY", t0.date(), t0, closed=False)
        judged = fresh._screen_bars("SPY", expected)
        assert [_seen(b) for b in got] == [_seen(b) for b in judged]
        assert sum(math.isnan(b.close) for b in got) == (bars[2] in expected)  # the bad bar, with no values
    assert feeds.status("SPY", t0, None).errors == {"invalid": 1}


def test_positions_read_only_the_open_ones_and_the_closed_ones_that_changed(tmp_path):
    db = tmp_path / "book.db"
    with PositionBook(db) as book:
        book.import_positions(_records(1_000, status="closed") + _records(4, status="open", first=1_000),
                              now=BOOK_NOW)
    reader = BookReader(db)
    read = reader.read()
    assert reader.closed_rows_read == 1_000 and read.closed_count == 1_000 and len(read.open_positions) == 4
    _matches_reading_the_whole_book(db, read)

    read = reader.read()  # nothing changed: no closed row is read
    assert reader.closed_rows_read == 0
    _matches_reading_the_whole_book(db, read)

    first, second = read.open_positions[0].id, read.open_positions[1].id
    with PositionBook(db) as book:
        book.set_pnl(first, 42.5, now=BOOK_NOW)  # an open position changes
    read = reader.read()
    assert reader.closed_rows_read == 0 and read.open_positions[0].pnl == 42.5
    _matches_reading_the_whole_book(db, read)

    with PositionBook(db) as book:
        book.set_pnl(second, -310.0, now=BOOK_NOW, close=True)  # one more closed: that one row is read
        book.import_positions(_records(3, status="closed", first=2_000) + _records(1, status="open", first=2_003),
                              now=BOOK_NOW)
    read = reader.read()
    assert reader.closed_rows_read == 4 and read.closed_count == 1_004 and len(read.open_positions) == 4
    _matches_reading_the_whole_book(db, read)

    # A closed row deleted by hand (no history row says so): the count gives it away and all are read again.
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM positions WHERE id = (SELECT id FROM positions WHERE status = 'closed' LIMIT 1)")
    read = reader.read()
    assert reader.closed_rows_read == 1_003 and read.closed_count == 1_003
    _matches_reading_the_whole_book(db, read)


def test_a_replaced_book_is_read_afresh(tmp_path):
    db, other = tmp_path / "book.db", tmp_path / "other.db"
    for path, closed in ((db, 30), (other, 12)):
        with PositionBook(path) as book:
            book.import_positions(_records(closed, status="closed") + _records(2, status="open", first=closed),
                                  now=BOOK_NOW)
    reader = BookReader(db)
    reader.read()
    other.replace(db)  # a backup restored over the book: same history length is no proof of the same rows
    read = reader.read()
    assert reader.closed_rows_read == 12 and read.closed_count == 12
    _matches_reading_the_whole_book(db, read)
