"""The Prometheus collector: the latest snapshot as metric families, built fresh on every scrape.

The only module that imports prometheus_client's collector types. `collect()` reads the snapshot it is handed
and the exporter's clock (for ages: on replay that is the replay clock, so a replayed day alerts like a live one);
it does no I/O and never raises: a failure is logged and the families built so far are still yielded.
Unknown values are absent series. docs/metrics.md is the contract for every name and label here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spreadwatch.app.snapshot import FAULT_KINDS
from spreadwatch.domain.vocabulary import FLOWS, REGIME_LEVEL, REGIMES, SESSION_PHASES, TRENDS
from spreadwatch.edges.providers import FAILURE_KINDS

if TYPE_CHECKING:
    from spreadwatch.app.snapshot import Snapshot

log = logging.getLogger(__name__)

OPPORTUNITY_LABELS = ("ticker", "id", "dte", "band", "spread_type", "flow_mode", "width", "entry_time_et")
ENTRY_SETUP_LABELS = ("ticker", "window", "setup", "dte", "band", "spread_type", "flow_mode")
POSITION_LABELS = ("position_id", "ticker", "spread_type", "band")


def _g(name: str, doc: str, labels: tuple[str, ...] = (), unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels), unit=unit)


def _age(now: datetime, then: datetime) -> float:
    """Seconds from `then` to the exporter's `now` (never negative)."""
    return max(0.0, (now - then).total_seconds())


class SnapshotCollector(Collector):
    """Yields every spreadwatch metric from `get_snapshot()`; `clock()` gives the exporter's now."""

    def __init__(self, get_snapshot: Callable[[], Snapshot | None], clock: Callable[[], datetime]) -> None:
        self._get_snapshot = get_snapshot
        self._clock = clock

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: families depend on the snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._get_snapshot()
        if snapshot is None:
            return
        try:
            now = self._clock()
            families: list[Metric] = []
            for part in (self._build, self._market, self._health, self._opportunities, self._positions,
                         self._portfolio):
                try:
                    families.extend(part(snapshot, now))
                except Exception:  # a bug in one part must not fail the scrape
                    log.exception("collector part %s failed", part.__name__)
            yield from families
        except Exception:
            log.exception("collector failed")

    # ---- build --------------------------------------------------------------------------------------------
    def _build(self, s: Snapshot, now: datetime) -> list[Metric]:
        info = _g("spreadwatch_build_info", "Build and data source (live|replay); always 1.", ("version", "source"))
        info.add_metric([s.version, s.data_mode], 1)
        clock = _g("spreadwatch_clock_timestamp_seconds",
                   "The exporter's clock (the replay clock when replaying); for display only.")
        clock.add_metric([], now.timestamp())
        return [info, clock]

    # ---- market -------------------------------------------------------------------------------------------
    def _market(self, s: Snapshot, now: datetime) -> list[Metric]:
        price = _g("spreadwatch_price", "Underlying level (index points); absent when unknown or stale.", ("ticker",))
        change = _g("spreadwatch_change_ratio", "Change vs the previous session's close (ratio).", ("ticker",))
        ivr = _g("spreadwatch_iv_rank_ratio", "IV rank of the ticker's vol index over 252 sessions (0..1).", ("ticker",))
        ivp = _g("spreadwatch_iv_percentile_ratio", "IV percentile of the ticker's vol index (0..1).", ("ticker",))
        vol = _g("spreadwatch_volume_ratio", "Cumulative volume vs the 20-session mean at this time of day.",
                 ("ticker",))
        trend = _g("spreadwatch_trend", "1 for the current trend.", ("ticker", "trend"))
        flow = _g("spreadwatch_flow", "1 for the current flow; all 0 when unknown.", ("ticker", "flow"))
        for ticker, facts in s.tickers.items():
            if not facts.known_at(now):  # a context the loop could not refresh within the bound: not knowledge
                continue
            ctx = facts.context
            for family, value in ((price, ctx.price), (change, ctx.change_ratio), (ivr, ctx.iv_rank),
                                  (ivp, ctx.iv_percentile), (vol, ctx.volume_ratio)):
                if value is not None:
                    family.add_metric([ticker], value)
            for name in TRENDS:
                trend.add_metric([ticker, name], 1 if ctx.trend == name else 0)
            for name in FLOWS:
                flow.add_metric([ticker, name], 1 if ctx.flow == name else 0)
        return [price, change, ivr, ivp, vol, trend, flow, *self._regime(s, now), *self._calendar(s, now)]

    def _regime(self, s: Snapshot, now: datetime) -> list[Metric]:
        vix = _g("spreadwatch_vix", "The VIX level.")
        regime = _g("spreadwatch_regime", "1 for the current VIX regime; all 0 when unknown.", ("regime",))
        level = _g("spreadwatch_regime_level", "Regime as a number: 0 very_low ... 4 extreme; absent when unknown.")
        rinfo = _g("spreadwatch_regime_info", "1: the current regime and the one before the last change.",
                   ("regime", "previous"))
        rage = _g("spreadwatch_regime_change_age_seconds", "Seconds since the last regime change.")
        families: list[Metric] = [vix, regime, level, rinfo, rage]
        facts = s.regime_facts
        if facts is None:
            return families
        current = facts.regime_at(now)
        value = facts.vix_at(now)
        if value is not None:
            vix.add_metric([], value)
        for name in REGIMES:
            regime.add_metric([name], 1 if current == name else 0)
        if current is not None:
            level.add_metric([], REGIME_LEVEL[current])
            rinfo.add_metric([current, facts.previous_regime or "none"], 1)
        if facts.changed_at is not None:
            rage.add_metric([], _age(now, facts.changed_at))
        return families

    def _calendar(self, s: Snapshot, now: datetime) -> list[Metric]:
        mopen = _g("spreadwatch_market_open", "1 during the regular session (clipped to configured hours).")
        sess = _g("spreadwatch_market_session", "1 for the current market phase.", ("session",))
        to_close = _g("spreadwatch_market_seconds_to_close", "Seconds to the session close; absent when closed.")
        window = _g("spreadwatch_entry_window_open", "1 inside the preferred entry hours on an open session.")
        facts = s.calendar
        if facts is not None:
            mopen.add_metric([], 1 if facts.market_open else 0)
            for name in SESSION_PHASES:
                sess.add_metric([name], 1 if facts.session == name else 0)
            if facts.seconds_to_close is not None and s.time is not None:
                remaining = facts.seconds_to_close - _age(now, s.time)
                if remaining > 0:
                    to_close.add_metric([], remaining)
            window.add_metric([], 1 if facts.entry_window_open else 0)
        return [mopen, sess, to_close, window]

    # ---- data health --------------------------------------------------------------------------------------
    def _health(self, s: Snapshot, now: datetime) -> list[Metric]:
        up = _g("spreadwatch_source_up", "1 when the last fetch of this symbol gave a valid value.", ("source",))
        age = _g("spreadwatch_source_age_seconds", "Age of the newest valid value of this symbol.", ("source",))
        last = _g("spreadwatch_source_last_success_timestamp_seconds",
                  "Exporter-clock time of the last valid value; for display only.", ("source",))
        errors = CounterMetricFamily("spreadwatch_source_errors", "Failed fetches by symbol and kind.",
                                     labels=["source", "kind"])
        for symbol, facts in s.sources.items():
            up.add_metric([symbol], 1 if facts.up_at(now) else 0)
            value_age = facts.age_at(now)
            if value_age is not None:
                age.add_metric([symbol], value_age)
            if facts.last_success is not None:
                last.add_metric([symbol], facts.last_success.timestamp())
            for kind in FAILURE_KINDS:
                errors.add_metric([symbol, kind], float(facts.errors.get(kind, 0)))
        stale = _g("spreadwatch_stale_after_seconds", "The staleness bound for market values (config).")
        stale.add_metric([], s.stale_after.total_seconds())
        return [up, age, last, errors, stale, *self._tasks(s, now), *self._grid(s, now)]

    def _tasks(self, s: Snapshot, now: datetime) -> list[Metric]:
        task_age = _g("spreadwatch_task_age_seconds", "Seconds since the task last succeeded.", ("task",))
        task_dur = _g("spreadwatch_task_duration_seconds", "Wall duration of the task's last run.", ("task",))
        task_last = _g("spreadwatch_task_last_run_timestamp_seconds", "Exporter-clock time of the last run.",
                       ("task",))
        task_err = CounterMetricFamily("spreadwatch_task_errors", "Failed runs of the task.", labels=["task"])
        task_faults = CounterMetricFamily("spreadwatch_task_failures", "Failed runs of the task by kind (bug: a "
                                          "defect, not an outside-world fault).", labels=["task", "kind"])
        for name, task in sorted(s.tasks.items()):
            if task.last_success is not None:
                task_age.add_metric([name], _age(now, task.last_success))
            if task.duration_seconds is not None:
                task_dur.add_metric([name], task.duration_seconds)
            if task.last_run is not None:
                task_last.add_metric([name], task.last_run.timestamp())
            task_err.add_metric([name], float(task.errors_total))
            for kind in FAULT_KINDS:  # a kind's series starts at its first failure (the cardinality stays small)
                if task.faults.get(kind):
                    task_faults.add_metric([name, kind], float(task.faults[kind]))
        return [task_age, task_dur, task_last, task_err, task_faults]

    def _grid(self, s: Snapshot, now: datetime) -> list[Metric]:
        if s.grid is None:
            return []
        rows = _g("spreadwatch_grid_rows", "Grid rows loaded (impossible rows skipped).")
        rows.add_metric([], s.grid.rows)
        skipped = _g("spreadwatch_grid_skipped_rows", "Impossible grid rows skipped.")
        skipped.add_metric([], s.grid.skipped_rows)
        grid_age = _g("spreadwatch_grid_age_seconds", "Age of the grid file on the exporter's clock.")
        grid_age.add_metric([], _age(now, datetime.fromtimestamp(s.grid.mtime, UTC)))
        return [rows, skipped, grid_age]

    # ---- opportunities ------------------------------------------------------------------------------------
    def _opportunities(self, s: Snapshot, now: datetime) -> list[Metric]:
        count = _g("spreadwatch_opportunities", "Configs passing every filter now (before the top-N cut).",
                   ("ticker",))
        names = {
            "score": "Trade score.", "in_window": "1 while in its entry window.",
            "blocked_by_risk": "1 when taking it would break a risk limit.",
            "win_ratio": "Backtested win rate held to expiry (0..1).",
            "roi_ratio": "Credit / max risk: the most a trade can return.",
            "sharpe": "Per-trade Sharpe.", "credit_dollars": "Credit, dollars per contract.",
            "risk_dollars": "Max risk, dollars per contract.", "rank": "1 = best.",
        }
        fams = {k: _g(f"spreadwatch_opportunity_{k}", doc, OPPORTUNITY_LABELS) for k, doc in names.items()}
        managed = {k: _g(f"spreadwatch_opportunity_{k}", doc, OPPORTUNITY_LABELS) for k, doc in MANAGED_DOCS.items()}
        strike = _g("spreadwatch_opportunity_strike", "Suggested strike by leg.", (*OPPORTUNITY_LABELS, "leg"))
        for ticker, result in sorted(s.scans.items()):
            count.add_metric([ticker], result.matching_count)
            for o in result.opportunities:
                labels = [ticker, o.id, str(o.dte), o.band, o.spread_type, o.flow_mode, f"{o.spread_width:g}",
                          o.entry_time_et]
                values = {"score": o.trade_score, "in_window": 1 if o.in_window else 0,
                          "blocked_by_risk": 1 if o.blocked_by_risk else 0, "win_ratio": o.win_rate,
                          "roi_ratio": o.roi, "sharpe": o.sharpe, "credit_dollars": o.credit,
                          "risk_dollars": o.max_risk, "rank": o.rank}
                for key, value in values.items():
                    fams[key].add_metric(labels, value)
                for key, known in _managed_values(o).items():  # absent where the grid does not know them
                    if known is not None:
                        managed[key].add_metric(labels, known)
                if o.strikes is not None:
                    for leg, value in o.strikes.as_dict().items():
                        strike.add_metric([*labels, leg], value)
        return [count, *fams.values(), *managed.values(), strike, *self._window_setups(s)]

    @staticmethod
    def _window_setups(s: Snapshot) -> list[Metric]:
        """The setups each entry window's notification lists: a rank series whose labels stay the same while the
        setup's width, figures and strikes change (the alert's identity), and an info series with the text."""
        rank = _g("spreadwatch_entry_setup_rank", "Rank of the setup in its entry window's notification (1 = best).",
                  ENTRY_SETUP_LABELS)
        info = _g("spreadwatch_entry_setup_info", "The setup's notification line, in the display zone; 1.",
                  (*ENTRY_SETUP_LABELS[:3], "id", "width", "window_local", "line"))
        for item in s.window_setups:
            o = item.opportunity
            labels = [item.ticker, item.window, item.setup, str(o.dte), o.band, o.spread_type, o.flow_mode]
            rank.add_metric(labels, item.rank)
            info.add_metric([*labels[:3], o.id, f"{o.spread_width:g}", item.window_local, item.line], 1)
        return [rank, info]

    # ---- positions ----------------------------------------------------------------------------------------
    def _positions(self, s: Snapshot, now: datetime) -> list[Metric]:
        exits = s.config.exits
        specs = {
            "pnl_dollars": "Last P&L logged (whole position).",
            "credit_dollars": "Credit received (whole position).",
            "risk_dollars": "Max risk (whole position).",
            "pnl_to_credit_ratio": "P&L / credit.",
            "sessions_to_expiry": "Trading sessions to expiry: 0 on the expiry session, -N once expired N sessions ago.",
            "entry_dte": "DTE at entry.",
            "expiry_timestamp_seconds": "Close of the expiry session; for display.",
            "pnl_age_seconds": "Seconds since the P&L was last logged.",
            "pnl_updated_timestamp_seconds": "When the P&L was last logged; for display.",
            "profit_target_dollars": "Profit target: profit_target_pct x credit.",
            "stop_loss_dollars": "Stop: -stop_loss_mult x credit (negative).",
            "time_exit_sessions": "Time exit threshold in sessions to expiry (config).",
            "pnl_max_age_seconds": "P&L older than this during the session deserves an update (config).",
        }
        fams = {k: _g(f"spreadwatch_position_{k}", doc, POSITION_LABELS) for k, doc in specs.items()}
        distance = {k: _g(f"spreadwatch_position_short_strike{k}", doc, (*POSITION_LABELS, "leg"))
                    for k, doc in DISTANCE_DOCS.items()}
        model = {k: _g(f"spreadwatch_position_{k}", doc,
                       (*POSITION_LABELS, "leg", "source") if k == "short_delta" else (*POSITION_LABELS, "source"))
                 for k, doc in MODEL_DOCS.items()}
        for facts in s.position_facts:
            item = facts.item
            p = item.position
            labels = [p.id, p.ticker, p.spread, p.band]

            def add(key: str, value: float, labels: list[str] = labels) -> None:
                fams[key].add_metric(labels, value)

            add("pnl_dollars", p.pnl)
            add("credit_dollars", p.credit)
            add("risk_dollars", p.strikes_risk)  # the strikes' risk, what the limits count
            add("pnl_to_credit_ratio", facts.pnl_to_credit)
            if item.sessions_to_expiry is not None:
                add("sessions_to_expiry", item.sessions_to_expiry)
            add("entry_dte", p.dte)
            if item.expiry_close is not None:
                add("expiry_timestamp_seconds", item.expiry_close.timestamp())
            updated = p.pnl_updated_at
            if updated is not None:
                add("pnl_age_seconds", _age(now, updated))
                add("pnl_updated_timestamp_seconds", updated.timestamp())
            add("profit_target_dollars", facts.profit_target)
            add("stop_loss_dollars", facts.stop_loss)
            add("time_exit_sessions", exits.time_exit_dte)
            add("pnl_max_age_seconds", exits.pnl_stale_after_minutes * 60)
            ticker = s.tickers.get(p.ticker)
            if ticker is not None and ticker.known_at(now):  # a price the loop could not refresh is no distance
                for d in facts.strike_distances:
                    for key, value in (("", d.strike), ("_distance_points", d.points), ("_distance_ratio", d.ratio),
                                       ("_distance_expected_moves", d.expected_moves),
                                       ("_near_expected_moves", exits.short_strike_near_expected_moves),
                                       ("_clear_expected_moves", exits.short_strike_clear_expected_moves)):
                        if value is not None:
                            distance[key].add_metric([*labels, d.leg], value)
                self._model(facts, labels, model)
        return [*fams.values(), *distance.values(), *model.values()]

    @staticmethod
    def _model(facts: Any, labels: list[str], model: dict[str, GaugeMetricFamily]) -> None:
        mark = facts.model
        if mark is None:
            return
        model["estimated_value_dollars"].add_metric([*labels, "model"], mark.value)
        model["estimated_pnl_dollars"].add_metric([*labels, "model"], mark.pnl)
        model["otm_probability_ratio"].add_metric([*labels, "model"], mark.probability_otm)
        for leg, delta in mark.short_deltas.items():
            model["short_delta"].add_metric([*labels, leg, "model"], delta)

    # ---- portfolio ----------------------------------------------------------------------------------------
    def _portfolio(self, s: Snapshot, now: datetime) -> list[Metric]:
        risk = s.config.risk
        limits_positions = _g("spreadwatch_portfolio_max_positions", "Config risk.max_positions.")
        limits_positions.add_metric([], risk.max_positions)
        limits_risk = _g("spreadwatch_portfolio_max_risk_dollars", "Config risk.max_total_risk.")
        limits_risk.add_metric([], risk.max_total_risk)
        families: list[Metric] = [limits_positions, limits_risk]
        if s.portfolio is None:
            return families
        pf = s.portfolio
        counts = _g("spreadwatch_portfolio_positions", "Positions by status.", ("status",))
        counts.add_metric(["open"], pf.open_count)
        counts.add_metric(["closed"], pf.closed_count)
        open_risk = _g("spreadwatch_portfolio_risk_dollars", "Max risk of open positions.")
        open_risk.add_metric([], pf.open_risk)
        unreal = _g("spreadwatch_portfolio_unrealized_pnl_dollars", "Sum of open P&L.")
        unreal.add_metric([], pf.unrealized_pnl)
        real = _g("spreadwatch_portfolio_realized_pnl_dollars", "Sum of closed P&L.")
        real.add_metric([], pf.realized_pnl)
        return [*families, counts, open_risk, unreal, real]


DISTANCE_DOCS = {
    "": "The short strike of the leg (index points).",
    "_distance_points": "Index points from the price to the short strike on the safe side; negative once breached.",
    "_distance_ratio": "Distance to the short strike / price.",
    "_distance_expected_moves": "Distance to the short strike / (price x vol index / 100 x sqrt(sessions left / 252)).",
    "_near_expected_moves": "SpreadwatchShortStrikeNear fires within this many expected moves (config).",
    "_clear_expected_moves": "A firing SpreadwatchShortStrikeNear holds until the distance is above this (config).",
}

MODEL_DOCS = {
    "estimated_value_dollars": "Estimated cost to buy the position back (whole position); source says which estimate.",
    "estimated_pnl_dollars": "Estimated P&L: credit - estimated value; never the logged P&L.",
    "short_delta": "Delta of the short option of the leg, per unit of the index (model).",
    "otm_probability_ratio": "Risk-neutral probability that every short strike finishes out of the money (model).",
}

MANAGED_DOCS = {
    "exit_win_ratio": "Backtested win rate with the exit rules (profit target, stop, time exit), after costs.",
    "exit_win_lower_ratio": "Lower bound of the 95 % interval of the managed win rate.",
    "exit_win_upper_ratio": "Upper bound of the 95 % interval of the managed win rate.",
    "expected_return_ratio": "Expected return on risk held to expiry: average P&L / average max risk.",
    "exit_expected_return_ratio": "Expected return on risk with the exit rules: average P&L / average max risk.",
    "pnl_dollars": "Average P&L held to expiry, dollars per contract.",
    "exit_pnl_dollars": "Average P&L with the exit rules, dollars per contract.",
    "effective_trades": "Backtested trades counting each loss episode once (the interval's sample size).",
}


def _managed_values(o: Any) -> dict[str, float | None]:
    return {"exit_win_ratio": o.exit_win_rate, "exit_win_lower_ratio": o.exit_win_rate_low,
            "exit_win_upper_ratio": o.exit_win_rate_high, "expected_return_ratio": o.expected_return,
            "exit_expected_return_ratio": o.exit_expected_return, "pnl_dollars": o.avg_pnl,
            "exit_pnl_dollars": o.exit_avg_pnl, "effective_trades": o.n_effective}


def build_registry(collector: SnapshotCollector) -> Any:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: Any) -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(registry)

