"""The Prometheus collector: the latest snapshot as metric families, and the /metrics page made of them.

The only module that imports prometheus_client. `collect()` reads the snapshot it is handed and the exporter's
clock (for ages: on replay that is the replay clock, so a replayed day alerts like a live one); it does no I/O and
never raises: a failure is logged and the families built so far are still yielded. Unknown values are absent
series. docs/metrics.md is the contract for every name and label here.

`Exposition` is what /metrics serves: each snapshot's families rendered once to bytes (by prometheus_client's own
`generate_latest`), the few that follow the clock (`ClockedGauge`: ages, the time to the close, the clock) appended
at each scrape from line templates, gzipped on request. Its content is the collector's at the same instant.
"""

from __future__ import annotations

import logging
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from spreadwatch.app.clock import command_now
from spreadwatch.app.snapshot import FAULT_KINDS
from spreadwatch.domain.display import zone_offsets
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


ValueAt = Callable[[datetime], "float | None"]


def _since(then: datetime) -> ValueAt:
    return lambda now: max(0.0, (now - then).total_seconds())


def _chain_age(then: datetime, delay: float) -> ValueAt:
    """Age of a chain's quotes: since the fetch, plus the chain's stated delay."""
    return lambda now: _age(now, then) + delay


def _remaining(seconds: float, since: datetime) -> ValueAt:
    """`seconds` left at `since`, counted down on the clock; None (absent) once nothing is left."""
    def left(now: datetime) -> float | None:
        value = seconds - _age(now, since)
        return value if value > 0 else None
    return left


class ClockedGauge:
    """A gauge whose samples follow the exporter's clock: an age, the time left to the close, the clock itself.

    Each sample is a function of the scrape's instant, fixed when the snapshot's families are built. `at(now)` is
    the family as prometheus_client renders it; `Exposition` renders only these lines at a scrape, from line
    templates made once per snapshot, and serves the rest of the page as bytes.
    """

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.samples: list[tuple[list[str], ValueAt]] = []
        self.since: list[datetime | None] = []  # per sample: the instant it is the age of (None: not an age)

    def add(self, labelvalues: list[str], value_at: ValueAt) -> None:
        self.samples.append((labelvalues, value_at))
        self.since.append(None)

    def add_age(self, labelvalues: list[str], since: datetime) -> None:
        self.samples.append((labelvalues, _since(since)))
        self.since.append(since)

    def at(self, now: datetime) -> GaugeMetricFamily:
        family = _g(self.name, self.documentation, self.labels)
        for labels, value_at in self.samples:
            value = value_at(now)
            if value is not None:
                family.add_metric(labels, value)
        return family


Family = Metric | ClockedGauge


class SnapshotCollector(Collector):
    """Yields every spreadwatch metric from `get_snapshot()`; `clock()` gives the exporter's now."""

    def __init__(self, get_snapshot: Callable[[], Snapshot | None], clock: Callable[[], datetime],
                 wall: Callable[[], datetime] = command_now) -> None:
        self._get_snapshot = get_snapshot
        self._clock = clock
        self._wall = wall  # the real clock (SPREADWATCH_NOW when set), which Prometheus and Alertmanager stamp with

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: families depend on the snapshot

    @property
    def snapshot(self) -> Snapshot | None:
        return self._get_snapshot()

    def now(self) -> datetime:
        return self._clock()

    def collect(self) -> Iterator[Metric]:
        snapshot = self._get_snapshot()
        if snapshot is None:
            return
        try:
            now = self._clock()
            for family in self.families(snapshot, now):
                yield family.at(now) if isinstance(family, ClockedGauge) else family
        except Exception:
            log.exception("collector failed")

    def families(self, snapshot: Snapshot, now: datetime) -> list[Family]:
        """Every family of `snapshot` at `now`, in exposition order; the clocked ones (ages) as `ClockedGauge`."""
        families: list[Family] = []
        for part in (self._build, self._market, self._health, self._chains, self._opportunities,
                     self._positions, self._portfolio, self._events):
            try:
                families.extend(part(snapshot, now))
            except Exception:  # a bug in one part must not fail the scrape
                log.exception("collector part %s failed", part.__name__)
        return families

    @staticmethod
    def knowledge(s: Snapshot, now: datetime) -> tuple[bool, ...]:
        """What, apart from the clocked families, `now` changes in the families of `s`: which tickers, sources and
        regime are still knowledge (each until its own instant). Two instants with the same answer give the same
        families but for the clocked ones."""
        regime = s.regime_facts
        return (*(facts.known_at(now) for facts in s.tickers.values()),
                *(facts.up_at(now) for facts in s.sources.values()),
                regime is not None and regime.known_at(now))

    # ---- build --------------------------------------------------------------------------------------------
    def _build(self, s: Snapshot, now: datetime) -> list[Family]:
        info = _g("spreadwatch_build_info", "Build and data source (live|replay); always 1.", ("version", "source"))
        info.add_metric([s.version, s.data_mode], 1)
        clock = ClockedGauge("spreadwatch_clock_timestamp_seconds",
                             "The exporter's clock (the replay clock when replaying); for display only.")
        clock.add([], lambda at: at.timestamp())
        return [info, clock, self._display_zone(s)]

    def _display_zone(self, s: Snapshot) -> GaugeMetricFamily:
        """The display zone's offsets around now, for the rules to attach to every alert (`display_zone`
        annotation) so that notifications write the alert's instants in that zone. Those instants are Prometheus's
        and Alertmanager's, on the real clock even when the exporter replays a day: the offsets are the real
        clock's too."""
        zone = s.config.display_timezone
        offsets = zone_offsets(self._wall(), ZoneInfo(zone))
        family = _g("spreadwatch_display_zone_info",
                    "The display zone (display_timezone) now: its UTC offset and abbreviation, and the instant "
                    "(UTC, empty if none within a year) its offset last changed with the offset and abbreviation "
                    "before; always 1.",
                    ("zone", "abbreviation", "offset_seconds", "changed", "previous_offset_seconds",
                     "previous_abbreviation"))
        changed = offsets.changed.strftime("%Y-%m-%dT%H:%M:%SZ") if offsets.changed else ""
        family.add_metric([zone, offsets.abbreviation, str(offsets.offset_seconds), changed,
                           str(offsets.previous_offset_seconds), offsets.previous_abbreviation], 1)
        return family

    # ---- option chains (the market mark) -------------------------------------------------------------------
    def _chains(self, s: Snapshot, now: datetime) -> list[Family]:
        """The chain sources, in families of their own: a delayed chain is always older than the index sources'
        staleness bound, and a chain that is down must not hold back the exits as a stale index source does."""
        if not s.chains:
            return []
        up = _g("spreadwatch_chain_up", "1 when the last fetch of every chain of the source gave quotes.", ("source",))
        age = ClockedGauge("spreadwatch_chain_age_seconds",
                           "Age of the quotes of the last good fetch (since it, plus the chain's stated delay).",
                           ("source",))
        errors = CounterMetricFamily("spreadwatch_chain_errors", "Failed chain fetches by source and kind.",
                                     labels=["source", "kind"])
        delay = s.config.marks.chain_delay_minutes * 60
        for name, status in s.chains.items():
            up.add_metric([name], 1 if status.up else 0)
            if status.last_success is not None:
                age.add([name], _chain_age(status.last_success, delay))
            for kind in FAILURE_KINDS:
                errors.add_metric([name, kind], float(status.errors.get(kind, 0)))
        return [up, age, errors]

    # ---- market -------------------------------------------------------------------------------------------
    def _market(self, s: Snapshot, now: datetime) -> list[Family]:
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

    def _regime(self, s: Snapshot, now: datetime) -> list[Family]:
        vix = _g("spreadwatch_vix", "The VIX level.")
        regime = _g("spreadwatch_regime", "1 for the current VIX regime; all 0 when unknown.", ("regime",))
        level = _g("spreadwatch_regime_level", "Regime as a number: 0 very_low ... 4 extreme; absent when unknown.")
        rinfo = _g("spreadwatch_regime_info", "1: the current regime and the one before the last change.",
                   ("regime", "previous"))
        rage = ClockedGauge("spreadwatch_regime_change_age_seconds", "Seconds since the last regime change.")
        families: list[Family] = [vix, regime, level, rinfo, rage]
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
            rage.add_age([], facts.changed_at)
        return families

    def _calendar(self, s: Snapshot, now: datetime) -> list[Family]:
        mopen = _g("spreadwatch_market_open", "1 during the regular session (clipped to configured hours).")
        sess = _g("spreadwatch_market_session", "1 for the current market phase.", ("session",))
        to_close = ClockedGauge("spreadwatch_market_seconds_to_close",
                                "Seconds to the session close; absent when closed.")
        window = _g("spreadwatch_entry_window_open", "1 inside the preferred entry hours on an open session.")
        facts = s.calendar
        if facts is not None:
            mopen.add_metric([], 1 if facts.market_open else 0)
            for name in SESSION_PHASES:
                sess.add_metric([name], 1 if facts.session == name else 0)
            if facts.seconds_to_close is not None and s.time is not None:
                to_close.add([], _remaining(facts.seconds_to_close, s.time))
            window.add_metric([], 1 if facts.entry_window_open else 0)
        return [mopen, sess, to_close, window]

    # ---- data health --------------------------------------------------------------------------------------
    def _health(self, s: Snapshot, now: datetime) -> list[Family]:
        up = _g("spreadwatch_source_up", "1 when the last fetch of this symbol gave a valid value.", ("source",))
        age = ClockedGauge("spreadwatch_source_age_seconds", "Age of the newest valid value of this symbol.",
                           ("source",))
        last = _g("spreadwatch_source_last_success_timestamp_seconds",
                  "Exporter-clock time of the last valid value; for display only.", ("source",))
        errors = CounterMetricFamily("spreadwatch_source_errors", "Failed fetches by symbol and kind.",
                                     labels=["source", "kind"])
        for symbol, facts in s.sources.items():
            up.add_metric([symbol], 1 if facts.up_at(now) else 0)
            if facts.value_time is not None:  # the age of the newest value, as SourceFacts.age_at says it
                age.add_age([symbol], facts.value_time)
            if facts.last_success is not None:
                last.add_metric([symbol], facts.last_success.timestamp())
            for kind in FAILURE_KINDS:
                errors.add_metric([symbol, kind], float(facts.errors.get(kind, 0)))
        stale = _g("spreadwatch_stale_after_seconds", "The staleness bound for market values (config).")
        stale.add_metric([], s.stale_after.total_seconds())
        return [up, age, last, errors, stale, *self._tasks(s, now), *self._grid(s, now)]

    def _tasks(self, s: Snapshot, now: datetime) -> list[Family]:
        task_age = ClockedGauge("spreadwatch_task_age_seconds", "Seconds since the task last succeeded.", ("task",))
        task_dur = _g("spreadwatch_task_duration_seconds", "Wall duration of the task's last run.", ("task",))
        task_last = _g("spreadwatch_task_last_run_timestamp_seconds", "Exporter-clock time of the last run.",
                       ("task",))
        task_err = CounterMetricFamily("spreadwatch_task_errors", "Failed runs of the task.", labels=["task"])
        task_faults = CounterMetricFamily("spreadwatch_task_failures", "Failed runs of the task by kind (bug: a "
                                          "defect, not an outside-world fault).", labels=["task", "kind"])
        for name, task in sorted(s.tasks.items()):
            if task.last_success is not None:
                task_age.add_age([name], task.last_success)
            if task.duration_seconds is not None:
                task_dur.add_metric([name], task.duration_seconds)
            if task.last_run is not None:
                task_last.add_metric([name], task.last_run.timestamp())
            task_err.add_metric([name], float(task.errors_total))
            for kind in FAULT_KINDS:  # a kind's series starts at its first failure (the cardinality stays small)
                if task.faults.get(kind):
                    task_faults.add_metric([name, kind], float(task.faults[kind]))
        return [task_age, task_dur, task_last, task_err, task_faults]

    def _grid(self, s: Snapshot, now: datetime) -> list[Family]:
        if s.grid is None:
            return []
        rows = _g("spreadwatch_grid_rows", "Grid rows loaded (impossible rows skipped).")
        rows.add_metric([], s.grid.rows)
        skipped = _g("spreadwatch_grid_skipped_rows", "Impossible grid rows skipped.")
        skipped.add_metric([], s.grid.skipped_rows)
        grid_age = ClockedGauge("spreadwatch_grid_age_seconds", "Age of the grid file on the exporter's clock.")
        grid_age.add_age([], datetime.fromtimestamp(s.grid.mtime, UTC))
        return [rows, skipped, grid_age]

    # ---- opportunities ------------------------------------------------------------------------------------
    def _opportunities(self, s: Snapshot, now: datetime) -> list[Family]:
        count = _g("spreadwatch_opportunities", "Configs passing every filter now (before the top-N cut).",
                   ("ticker",))
        names = {
            "score": "Trade score.", "in_window": "1 while in its entry window.",
            "blocked_by_risk": "1 when taking it would break a risk limit.",
            "win_ratio": "Backtested win rate held to expiry (0..1).",
            "roi_ratio": "Credit / max risk: the most a trade can return.",
            "sharpe": "Per-trade Sharpe.", "credit_dollars": "Credit, dollars per contract.",
            "risk_dollars": "Max risk, dollars per contract.", "rank": "1 = best.",
            "held_back": "1 when a scheduled event holds new entries back (events.policy).",
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
                          "risk_dollars": o.max_risk, "rank": o.rank, "held_back": 1 if o.held_back else 0}
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

    # ---- events -------------------------------------------------------------------------------------------
    def _events(self, s: Snapshot, now: datetime) -> list[Metric]:
        return [*_event_families(s), *_digest_families(s)]

    # ---- positions ----------------------------------------------------------------------------------------
    def _positions(self, s: Snapshot, now: datetime) -> list[Family]:
        exits = s.config.exits
        fams: dict[str, Family] = {k: _g(f"spreadwatch_position_{k}", doc, POSITION_LABELS)
                                   for k, doc in POSITION_DOCS.items()}
        pnl_age = fams["pnl_age_seconds"] = ClockedGauge("spreadwatch_position_pnl_age_seconds",
                                                          POSITION_DOCS["pnl_age_seconds"], POSITION_LABELS)
        distance = {k: _g(f"spreadwatch_position_short_strike{k}", doc, (*POSITION_LABELS, "leg"))
                    for k, doc in DISTANCE_DOCS.items()}
        model = _model_families()
        exit_fams: dict[str, Family] = {
            "exit_pnl_dollars": _g("spreadwatch_position_exit_pnl_dollars", EXIT_DOCS["exit_pnl_dollars"],
                                   (*POSITION_LABELS, "source")),
            "exit_pnl_age_seconds": ClockedGauge("spreadwatch_position_exit_pnl_age_seconds",
                                                 EXIT_DOCS["exit_pnl_age_seconds"], (*POSITION_LABELS, "source")),
        }
        vol = _g("spreadwatch_position_estimated_vol_index", "The vol index level the estimate used.",
                 (*POSITION_LABELS, "source", "symbol"))
        flags = _g("spreadwatch_position_market_quote_flag", "1 for a leg whose chain quote was refused (no mark).",
                   (*POSITION_LABELS, "leg", "flag"))
        for facts in s.position_facts:
            item = facts.item
            p = item.position
            labels = [p.id, p.ticker, p.spread, p.band]

            def add(key: str, value: float, labels: list[str] = labels) -> None:
                fams[key].add_metric(labels, value)  # type: ignore[union-attr]  # a gauge, not the clocked age

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
                pnl_age.add_age(labels, updated)
                add("pnl_updated_timestamp_seconds", updated.timestamp())
            add("profit_target_dollars", facts.profit_target)
            add("stop_loss_dollars", facts.stop_loss)
            add("time_exit_sessions", exits.time_exit_dte)
            add("pnl_max_age_seconds", exits.pnl_stale_after_minutes * 60)
            self._exit_pnl(facts, labels, exit_fams)
            self._market_mark(facts, labels, model, flags)
            ticker = s.tickers.get(p.ticker)
            if ticker is not None and ticker.known_at(now):  # a price the loop could not refresh is no distance
                self._distances(facts, labels, distance, exits)
                self._model(facts, labels, model)
                symbols = s.config.tickers.get(p.ticker)
                if facts.model is not None and symbols is not None:
                    vol.add_metric([*labels, "model", symbols.vol_index], facts.model.vol_index)
        return [*fams.values(), *distance.values(), *model.values(), vol, *exit_fams.values(), flags]

    @staticmethod
    def _market_mark(facts: Any, labels: list[str], model: dict[str, GaugeMetricFamily],
                     flags: GaugeMetricFamily) -> None:
        """The chain's mark beside the model's (source="market"), or the legs whose quotes it refused."""
        mark = facts.market
        if mark is None:
            return
        if mark.value is not None and mark.pnl is not None:
            model["estimated_value_dollars"].add_metric([*labels, "market"], mark.value)
            model["estimated_pnl_dollars"].add_metric([*labels, "market"], mark.pnl)
        for leg, flag in sorted(mark.flags.items()):
            flags.add_metric([*labels, leg, flag], 1)

    @staticmethod
    def _distances(facts: Any, labels: list[str], distance: dict[str, GaugeMetricFamily], exits: Any) -> None:
        for d in facts.strike_distances:
            for key, value in (("", d.strike), ("_distance_points", d.points), ("_distance_ratio", d.ratio),
                               ("_distance_expected_moves", d.expected_moves),
                               ("_near_expected_moves", exits.short_strike_near_expected_moves),
                               ("_clear_expected_moves", exits.short_strike_clear_expected_moves)):
                if value is not None:
                    distance[key].add_metric([*labels, d.leg], value)

    @staticmethod
    def _exit_pnl(facts: Any, labels: list[str], fams: dict[str, Family]) -> None:
        """The P&L the exit rules evaluate, as the snapshot chose it (exits.pnl_sources), with its source."""
        reading = facts.exit_pnl
        if reading is None:
            return
        pnl, age = fams["exit_pnl_dollars"], fams["exit_pnl_age_seconds"]
        assert isinstance(pnl, GaugeMetricFamily) and isinstance(age, ClockedGauge)
        pnl.add_metric([*labels, reading.source], reading.pnl)
        if reading.as_of is not None:
            age.add_age([*labels, reading.source], reading.as_of)

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
    def _portfolio(self, s: Snapshot, now: datetime) -> list[Family]:
        risk = s.config.risk
        limits_positions = _g("spreadwatch_portfolio_max_positions", "Config risk.max_positions.")
        limits_positions.add_metric([], risk.max_positions)
        limits_risk = _g("spreadwatch_portfolio_max_risk_dollars", "Config risk.max_total_risk.")
        limits_risk.add_metric([], risk.max_total_risk)
        families: list[Family] = [limits_positions, limits_risk]
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


POSITION_DOCS = {
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

EXIT_DOCS = {
    "exit_pnl_dollars": "The P&L the profit target and stop evaluate: the first current of exits.pnl_sources.",
    "exit_pnl_age_seconds": "Age of the exit P&L: since it was logged, or of the oldest market value a mark used.",
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


def _model_families() -> dict[str, GaugeMetricFamily]:
    return {k: _g(f"spreadwatch_position_{k}", doc,
                  (*POSITION_LABELS, "leg", "source") if k == "short_delta" else (*POSITION_LABELS, "source"))
            for k, doc in MODEL_DOCS.items()}


def _event_families(s: Snapshot) -> list[Metric]:
    from spreadwatch.domain.events import EVENT_KINDS

    today = _g("spreadwatch_event_today", "1 when an event of this kind is scheduled today (ET day).", ("kind",))
    days = _g("spreadwatch_event_next_days",
              "Calendar days to the next known event of this kind (0: today); absent when none is known.", ("kind",))
    holds = _g("spreadwatch_event_holds_entries",
               "1 when this kind's policy holds new entries back (hold_day or hold_through), 0 when it only marks.",
               ("kind",))
    info = _g("spreadwatch_event_info", "1 for each event today and in the next 7 days.",
              ("kind", "date", "name", "policy"))
    facts = s.event_facts
    if facts is None or s.events is None:
        return []
    on_today = {e.kind for e in facts.today}
    for kind in EVENT_KINDS:
        today.add_metric([kind], 1 if kind in on_today else 0)
        holds.add_metric([kind], 1 if facts.holds[kind] else 0)
        if kind in facts.days_to_next:
            days.add_metric([kind], facts.days_to_next[kind])
    for e in facts.coming:
        info.add_metric([e.kind, e.day.isoformat(), e.name, s.events.policy(e.kind)], 1)
    return [today, days, holds, info]


def _digest_families(s: Snapshot) -> list[Metric]:
    if not s.digests:
        return []
    up = _g("spreadwatch_digest", "1 while the morning brief or the end-of-day summary of `day` is up (once per "
            "session; absent otherwise).", ("kind", "day"))
    info = _g("spreadwatch_digest_info", "The digest's title and text (read by the alert's annotations); 1 while it "
              "is up.", ("kind", "day", "title", "text"))
    for d in s.digests:
        up.add_metric([d.kind, d.day.isoformat()], 1)
        info.add_metric([d.kind, d.day.isoformat(), d.title, d.text], 1)
    return [up, info]


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
    return generate_latest(registry)



class _Families:
    """A list of families as prometheus_client's `generate_latest` takes them (it only calls `collect()`)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime, unknown OS (RFC 1952)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    """`at` in whole microseconds since the epoch, exactly (so an age computed from two of them is the float
    `timedelta.total_seconds()` gives: one correctly rounded division of the same integer)."""
    return (at - _EPOCH) // _MICROSECOND


class _Tail:
    """A clocked family rendered from line templates: its header and each sample's line up to the value, made by
    prometheus_client itself from the family with placeholder values, so a line differs from its own only in the
    value, formatted as it formats values. A family of ages (a position's P&L age, one line per open position) is
    rendered in one pass over integer microseconds."""

    def __init__(self, family: ClockedGauge) -> None:
        placeholder = _g(family.name, family.documentation, family.labels)
        for labels, _ in family.samples:
            placeholder.add_metric(labels, 0.0)
        lines = generate_latest(_Families([placeholder])).decode().splitlines(keepends=True)
        self.header = "".join(lines[:2])
        self.prefixes = [line.rsplit(" ", 1)[0] + " " for line in lines[2:]]
        self.values = [value_at for _, value_at in family.samples]
        self.ages: list[int] | None = None  # each sample's instant in microseconds, when every one is an age
        try:
            if family.since and all(at is not None for at in family.since):
                self.ages = [_micros(at) for at in family.since if at is not None]
        except (TypeError, OverflowError):  # an instant without a zone: each sample's own function then
            self.ages = None
        # The lines as alternating pieces, prefix then value: each prefix after the first carries the newline
        # that ends the line before it.
        self._pieces: list[str] = [p for i, prefix in enumerate(self.prefixes)
                                   for p in ((prefix if i == 0 else "\n" + prefix), "")]

    def render(self, now: datetime, out: list[str]) -> None:
        out.append(self.header)
        if not self.prefixes:
            return
        if self.ages is not None:
            now_us = _micros(now)
            if now_us >= max(self.ages) and now_us - min(self.ages) < 10**12:
                # Every age in [0, 1e6) s: `floatToGoString` is Python's repr there, so one pass does them all.
                pieces = self._pieces.copy()
                pieces[1::2] = map(repr, [(now_us - then) / 1e6 for then in self.ages])
                out.append("".join(pieces))
                out.append("\n")
                return
        for prefix, value_at in zip(self.prefixes, self.values, strict=True):
            value = value_at(now)
            if value is not None:
                out.append(f"{prefix}{floatToGoString(value)}\n")


GZIP_LEVEL = 6  # zlib's default, for the fixed part: once per snapshot, so the better ratio is worth its time
TAIL_GZIP_LEVEL = 1  # the clocked lines, at every scrape: their labels repeat, so the fastest level packs them well


class _Page:
    """One snapshot's page for one state of knowledge: every family but the clocked ones as bytes (and as a
    byte-aligned, unfinished deflate stream, for gzip), rendered once; the clocked ones as templates."""

    def __init__(self, families: list[Family]) -> None:
        fixed = [f for f in families if not isinstance(f, ClockedGauge)]
        self.tails = [_Tail(f) for f in families if isinstance(f, ClockedGauge)]
        self.text = generate_latest(_Families(fixed))
        self._deflated: bytes | None = None
        self._crc = zlib.crc32(self.text)

    def tail(self, now: datetime) -> bytes:
        out: list[str] = []
        for tail in self.tails:
            tail.render(now, out)
        return "".join(out).encode()

    def deflated(self) -> bytes:
        if self._deflated is None:
            # Raw deflate, flushed to a byte boundary but not finished: a scrape's tail, deflated on its own and
            # finished, continues it into one valid stream.
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
            self._deflated = compressor.compress(self.text) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return self._deflated

    def gzipped(self, now: datetime) -> tuple[bytes, ...]:
        """The page at `now` as one gzip member, in pieces: the cached deflate of the fixed part, then the tail's."""
        tail = self.tail(now)
        compressor = zlib.compressobj(TAIL_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        trailer = struct.pack("<II", zlib.crc32(tail, self._crc), (len(self.text) + len(tail)) & 0xFFFFFFFF)
        return _GZIP_HEADER, self.deflated(), compressor.compress(tail) + compressor.flush() + trailer


class Exposition:
    """/metrics as bytes: each snapshot is rendered once (when it is published, `prepare`), and a scrape appends
    only the clocked families (ages, the time to the close, the clock: a few lines, one per open position at most)
    to the cached bytes, gzipped or not.

    The content is what prometheus_client's `generate_latest` gives for the collector at the same instant, the
    clocked families moved to the end (the order of families means nothing to a scraper). A page is kept per
    state of knowledge (`SnapshotCollector.knowledge`), so a value that goes stale between two snapshots leaves the
    page as it leaves the collector's families. Thread-safe: the loop prepares while the server's workers read.
    """

    def __init__(self, collector: SnapshotCollector) -> None:
        self.collector = collector
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._pages: dict[tuple[bool, ...], _Page] = {}

    def prepare(self, snapshot: Snapshot) -> None:
        """Render `snapshot` at its own instant (done when it is published, so scrapes find it ready)."""
        self._page(snapshot, snapshot.time or self.collector.now())

    def body(self, *, gzipped: bool = False, now: datetime | None = None) -> bytes:
        """The page of the collector's current snapshot at `now` (default: the collector's clock)."""
        return b"".join(self.pieces(gzipped=gzipped, now=now))

    def pieces(self, *, gzipped: bool = False, now: datetime | None = None) -> tuple[bytes, ...]:
        """`body()` in the pieces it is made of (the cached bytes are sent as they are, never copied)."""
        snapshot = self.collector.snapshot
        if snapshot is None:
            return ()
        at = now or self.collector.now()
        page = self._page(snapshot, at)
        return page.gzipped(at) if gzipped else (page.text, page.tail(at))

    def _page(self, snapshot: Snapshot, now: datetime) -> _Page:
        with self._lock:
            if snapshot is not self._snapshot:
                self._snapshot, self._pages = snapshot, {}
            key = self.collector.knowledge(snapshot, now)
            page = self._pages.get(key)
            if page is None:
                page = self._pages[key] = _Page(self.collector.families(snapshot, now))
                if len(self._pages) > 8:  # knowledge only ever runs out: the first pages are past
                    del self._pages[next(iter(self._pages))]
            return page
