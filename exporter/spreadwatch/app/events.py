"""The event log: changes only, in the words of the original's alerts.log.

Reads the facts each snapshot decided (which sources are current, the regime, exits met, the portfolio); it
decides no staleness or regime of its own. Writes to the `spreadwatch.events` logger (console and paths.log_file).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from spreadwatch.app.snapshot import Snapshot, TickerFacts
from spreadwatch.domain.display import duration_text, local_time
from spreadwatch.domain.positions import exit_line, exit_signals

events = logging.getLogger("spreadwatch.events")


def _age_text(age: float | None) -> str:
    return "no value" if age is None else f"{duration_text(age)} old"


OPENING_GRACE_SECONDS = 180  # no "stale" event in a session's first 3 minutes (the alert rule waits as long)



def in_opening_grace(calendar: Any, now: datetime) -> bool:
    """The first minutes of a session, before the first bar of the day can be expected: every source still holds
    the previous close. Stale data then is not news (as in SpreadwatchMarketDataStale's rule)."""
    if not calendar.is_open(now):
        return False
    session_open, _ = calendar.open_close(calendar.current_or_last_session(now))
    return (now - session_open).total_seconds() < OPENING_GRACE_SECONDS

class EventTracker:
    """Writes the event log (`[2026-02-21 09:15:00 PT] [WARNING] Regime change: LOW → MEDIUM (VIX 18.5)`, times in
    the display zone) on changes only: a ticker's market data going stale and fresh again, the regime becoming
    unknown and known again, regime changes, an entry window's list of setups gaining one (the list, as the
    opportunity notification shows it), exits met, risk breaches, sources down and up."""

    def __init__(self, config: Any, calendar: Any) -> None:
        self.config = config
        self.calendar = calendar
        self._regime: str | None = None  # the last known regime
        self._regime_known: bool | None = None  # None until the first snapshot with market data
        self._stale: dict[str, frozenset[str]] = {}  # ticker -> its symbols without a current value
        self._in_window: dict[tuple[str, str], frozenset[str]] = {}  # (ticker, window) -> setups told
        self._held: set[str] = set()  # in-window setups held back by a scheduled event, already said
        self._exits: set[tuple[str, str]] = set()
        self._risk: set[str] = set()
        self._down: set[str] = set()
        self._first = True

    def _emit(self, now: datetime, level: str, message: str) -> None:
        stamp = local_time(now, self.calendar.display_tz, "%Y-%m-%d %H:%M:%S")
        events.log(getattr(logging, level if level != "OPPORTUNITY" and level != "EXIT" else "WARNING"),
                   "[%s] [%s] %s", stamp, level, message)

    # ---- market data and regime: known or not (the snapshot's facts) -----------------------------------------
    def _opening(self, now: datetime) -> bool:
        return in_opening_grace(self.calendar, now)

    def _stale_symbols(self, now: datetime, facts: TickerFacts, before: frozenset[str], opening: bool
                       ) -> frozenset[str]:
        """A ticker's symbols without a current value at `now` (in the opening minutes only those already stale or
        with no value at all)."""
        ctx = facts.context
        return frozenset(symbol for symbol in ctx.sources
                         if not ctx.source_current(symbol, now)
                         and (not opening or symbol in before or ctx.source_age(symbol, now) is None))

    def _freshness(self, now: datetime, s: Snapshot) -> None:
        """A ticker's sources without a current value: a warning when some become stale (which, how old), INFO when
        they are fresh again. At the first snapshot only what is stale is reported; in the opening minutes only a
        source with no value at all."""
        bound = duration_text(float(self.config.market.stale_after_seconds))
        opening = self._opening(now)
        for ticker, facts in s.tickers.items():
            ctx = facts.context
            before = self._stale.get(ticker, frozenset())
            stale = self._stale_symbols(now, facts, before, opening)
            if stale - before:
                listed = ", ".join(f"{symbol} {_age_text(ctx.source_age(symbol, now))}" for symbol in ctx.sources
                                   if symbol in stale - before)
                self._emit(now, "WARNING", f"Market data stale: {ticker} ({listed}; bound {bound})")
            if before - stale:
                back = ", ".join(symbol for symbol in ctx.sources if symbol in before - stale)
                still = ", ".join(f"{symbol} {_age_text(ctx.source_age(symbol, now))}" for symbol in ctx.sources
                                  if symbol in stale)
                self._emit(now, "INFO", f"Market data fresh again: {ticker} ({back})"
                                        + (f"; still stale: {still}" if still else ""))
            self._stale[ticker] = stale

    def _regime_events(self, now: datetime, s: Snapshot) -> None:
        """Unknown VIX is an unknown regime (said once); when the VIX returns the rule has resumed from the last
        known regime, so only a different regime is a change."""
        facts = s.regime_facts
        if facts is None or not s.contexts:
            return
        regime = facts.regime_at(now)
        vix = f" (VIX {facts.vix:.1f})" if facts.vix is not None else ""
        if regime is None and self._opening(now) and self._regime_known is not False:
            return  # the previous close's VIX until the first bar of the day: not news
        if regime is None:
            if self._regime_known is not False:
                why = f"{facts.symbol} {_age_text(facts.vix_age_at(now))}"
                last = f"; last known {self._regime.upper()}" if self._regime is not None else ""
                self._emit(now, "WARNING", f"Regime unknown: VIX unavailable ({why}{last})")
            self._regime_known = False
            return
        if self._regime_known is False:
            again = " again" if self._regime is not None else ""
            self._emit(now, "INFO", f"Regime known{again}: {regime.upper()}{vix}")
        if self._regime is not None and regime != self._regime:
            self._emit(now, "WARNING", f"Regime change: {self._regime.upper()} → {regime.upper()}{vix}")
        self._regime = regime
        self._regime_known = True

    # ---- opportunities, exits, risk, sources ----------------------------------------------------------------
    def _opportunities(self, now: datetime, s: Snapshot) -> None:
        """Per ticker and entry window, the list an opportunity notification shows, when it gains a setup."""
        lists: dict[tuple[str, str], list[Any]] = {}
        for item in s.window_setups:
            lists.setdefault((item.ticker, item.window), []).append(item)
        for key, items in lists.items():
            told = self._in_window.get(key, frozenset())
            now_listed = frozenset(item.setup for item in items)
            if not now_listed <= told:
                lines = "\n".join(f"  #{item.rank}: {item.line}" for item in items)
                self._emit(now, "OPPORTUNITY", f"Found {len(items)} trade opportunity(ies) on {key[0]}, entry window "
                                               f"{items[0].window_local}\n{lines}")
            self._in_window[key] = told | now_listed
        self._in_window = {key: told for key, told in self._in_window.items() if key in lists}
        held = {o.id: o for result in s.scans.values() for o in result.opportunities
                if o.in_window and not o.blocked_by_risk and o.held_back}
        new = [o for oid, o in held.items() if oid not in self._held]
        if new:  # in window but held back by a scheduled event: said once, never as an opportunity
            reasons = ", ".join(sorted({o.held_back for o in new if o.held_back}))
            self._emit(now, "INFO", f"{len(new)} setup(s) in window held back: {reasons}")
        self._held = set(held)

    def _exit_events(self, now: datetime, s: Snapshot) -> None:
        exits_now: set[tuple[str, str]] = set()
        for facts in s.position_facts:  # target and stop on the exit P&L, as the alerts evaluate them
            item = facts.item
            reading = facts.exit_pnl
            for signal in exit_signals(item.position, item.sessions_to_expiry, self.config.exits, reading, now):
                if reading is None and signal.reason in ("profit_target", "stop_loss"):
                    continue  # no exit P&L (an order without `logged`, no current mark): nothing to evaluate
                key = (item.position.id, signal.reason)
                exits_now.add(key)
                if key not in self._exits:
                    self._emit(now, "EXIT", exit_line(item.position.id, signal))
        self._exits = exits_now

    def _risk_events(self, now: datetime, s: Snapshot) -> None:
        risk_now = set()
        pf = s.portfolio
        if pf is not None:
            limits = self.config.risk
            if pf.open_risk > limits.max_total_risk:
                risk_now.add("risk")
                if "risk" not in self._risk:
                    self._emit(now, "ERROR", f"RISK LIMIT BREACH - Total Capital at Risk: ${pf.open_risk:,.0f} "
                                             f"exceeds ${limits.max_total_risk:,.0f}")
            if pf.open_count > limits.max_positions:
                risk_now.add("count")
                if "count" not in self._risk:
                    self._emit(now, "ERROR", f"POSITION LIMIT BREACH - {pf.open_count} open positions exceed "
                                             f"{limits.max_positions}")
        self._risk = risk_now

    def _source_events(self, now: datetime, s: Snapshot) -> None:
        # A source is down here when its last fetch failed (a fetch still stuck is the market task's failure).
        down_now = {symbol for facts in s.tickers.values() for symbol, st in facts.context.sources.items()
                    if not st.up}
        down_now |= {name for name, chain in s.chains.items() if not chain.up}  # option chains: the same lines
        for symbol in sorted(down_now - self._down):
            self._emit(now, "WARNING", f"Market data source {symbol} is down")
        if not self._first:
            for symbol in sorted(self._down - down_now):
                self._emit(now, "INFO", f"Market data source {symbol} is back up")
        self._down = down_now

    def observe(self, s: Snapshot) -> None:
        now = s.time
        if now is None:
            return
        self._freshness(now, s)
        self._regime_events(now, s)
        self._opportunities(now, s)
        self._exit_events(now, s)
        self._risk_events(now, s)
        self._source_events(now, s)
        self._first = False
