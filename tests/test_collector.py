"""The collector: every contract metric from a snapshot, absent when unknown, bounded, valid exposition."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from realstack import exposition_samples
from spreadwatch.app.snapshot import CalendarFacts, GridInfo, OpenPosition, Portfolio, Snapshot, TaskStatus
from spreadwatch.app.watcher import MarketContext, SourceStatus
from spreadwatch.config import Config
from spreadwatch.domain.positions import Position
from spreadwatch.domain.scanner import Opportunity, ScanResult
from spreadwatch.domain.strikes import Strikes
from spreadwatch.edges.collector import SnapshotCollector

NOW = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
GOLDEN = Path(__file__).parent / "data" / "golden_metrics.txt"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"  # the metrics contract


def context(ticker="NDX", price=20500.0, vix=16.8, regime="medium", at=NOW, up=True):
    return MarketContext(
        ticker=ticker, time=at, session="open", market_open=True, entry_window_open=True,
        seconds_to_close=19800.0, price=price, prev_close=20400.0, change_ratio=price / 20400.0 - 1 if price else None,
        vix=vix, regime=regime, previous_regime="low", regime_changed_at=at - timedelta(minutes=5),
        iv_rank=0.4, iv_percentile=0.6, volume_ratio=1.1, trend="sideways", flow="up", flow_0dte="flat",
        daily_closes=(), daily_opens=(),
        sources={"^NDX": SourceStatus("^NDX", up, 30.0, at - timedelta(seconds=30), {"empty": 2}),
                 "^VIX": SourceStatus("^VIX", up, 30.0, at - timedelta(seconds=30), {})},
    )


def opportunity(i, ticker="NDX"):
    return Opportunity(
        id=f"{ticker.lower()}{i:08d}", rank=i + 1, ticker=ticker, dte=1, band="P98", spread_type="iron_condor",
        flow_mode="with_flow", spread_width=20.0, entry_time_et="10:30", entry_time_local="07:30", win_rate=0.955,
        roi=0.346, sharpe=0.5, trade_score=80.0 - i, credit=285.0, max_risk=1715.0, n_trades=40,
        in_window=i == 0, blocked_by_risk=False,
        strikes=Strikes(short_put=19500, long_put=19480, short_call=20500, long_call=20520), expiry="2026-11-25",
    )


def position(i):
    return Position(
        id=f"p{i:04d}", ticker="NDX", spread="put_spread", band="P98", flow_mode="with_flow", dte=3, contracts=1,
        entry_time=NOW - timedelta(days=1), expiry=datetime(2026, 11, 27).date(), credit=200.0, risk=1800.0,
        pnl=50.0 + i, pnl_updated_at=NOW - timedelta(minutes=10), status="open", short_put=19500.0,
        long_put=19480.0, short_call=None, long_call=None, note="", closed_at=None,
    )


def snapshot(tickers=("NDX",), n_opps=3, n_positions=2, **changes):
    config = Config()
    tasks = {n: TaskStatus(n, 60.0, NOW, NOW, 0.01, True, None, 1) for n in ("market", "scan", "positions")}
    snap = Snapshot(
        version="0.1.0", data_mode="replay", data_description="test", config=config, time=NOW,
        calendar=CalendarFacts("open", True, True, 19800.0),
        contexts={t: context(t) for t in tickers},
        scans={t: ScanResult(t, "medium", 7, 42, tuple(opportunity(i, t) for i in range(n_opps))) for t in tickers},
        grid=GridInfo("grid.csv", 100, 7, (NOW - timedelta(days=2)).timestamp()),
        positions=tuple(OpenPosition(position(i), 2, NOW + timedelta(days=3)) for i in range(n_positions)),
        portfolio=Portfolio(n_positions, 4, 1800.0 * n_positions, 100.0, 250.0),
        tasks=tasks,
    )
    return dataclasses.replace(snap, **changes)


def registry_for(snap, now=NOW):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snap, lambda: now))
    return registry


def test_market_values_and_state_sets():
    r = registry_for(snapshot())
    assert r.get_sample_value("spreadwatch_price", {"ticker": "NDX"}) == 20500.0
    assert r.get_sample_value("spreadwatch_regime", {"regime": "medium"}) == 1
    assert r.get_sample_value("spreadwatch_regime", {"regime": "low"}) == 0
    assert r.get_sample_value("spreadwatch_regime_level") == 2
    assert r.get_sample_value("spreadwatch_regime_info", {"regime": "medium", "previous": "low"}) == 1
    assert r.get_sample_value("spreadwatch_regime_change_age_seconds") == 300
    assert r.get_sample_value("spreadwatch_market_session", {"session": "open"}) == 1
    assert r.get_sample_value("spreadwatch_build_info", {"version": "0.1.0", "source": "replay"}) == 1
    assert r.get_sample_value("spreadwatch_source_errors_total", {"source": "^NDX", "kind": "empty"}) == 2


def test_unknown_vix_is_absent_and_no_regime_is_set():
    snap = snapshot(contexts={"NDX": context(vix=None, regime=None)})
    r = registry_for(snap)
    assert r.get_sample_value("spreadwatch_vix") is None
    assert r.get_sample_value("spreadwatch_regime_level") is None
    assert all(r.get_sample_value("spreadwatch_regime", {"regime": g}) == 0
               for g in ("very_low", "low", "medium", "high", "extreme"))


def test_ages_use_the_exporters_clock_and_stale_context_goes_absent():
    snap = snapshot()
    later = NOW + timedelta(seconds=200)  # past stale_after_seconds (180)
    r = registry_for(snap, now=later)
    assert r.get_sample_value("spreadwatch_price", {"ticker": "NDX"}) is None
    assert r.get_sample_value("spreadwatch_source_up", {"source": "^NDX"}) == 0
    assert r.get_sample_value("spreadwatch_source_age_seconds", {"source": "^NDX"}) == 230
    assert r.get_sample_value("spreadwatch_task_age_seconds", {"task": "market"}) == 200
    assert r.get_sample_value("spreadwatch_market_seconds_to_close") == 19600


def test_thresholds_have_the_labels_of_the_values_they_guard():
    r = registry_for(snapshot())
    labels = {"position_id": "p0000", "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}
    assert r.get_sample_value("spreadwatch_position_pnl_dollars", labels) == 50
    assert r.get_sample_value("spreadwatch_position_profit_target_dollars", labels) == 100
    assert r.get_sample_value("spreadwatch_position_stop_loss_dollars", labels) == -400
    assert r.get_sample_value("spreadwatch_position_time_exit_sessions", labels) == 1
    assert r.get_sample_value("spreadwatch_position_pnl_age_seconds", labels) == 600
    assert r.get_sample_value("spreadwatch_position_pnl_max_age_seconds", labels) == 7200


def test_a_failing_snapshot_part_does_not_fail_the_scrape():
    broken = snapshot(positions=(OpenPosition(object(), 1, None),))
    text = generate_latest(registry_for(broken)).decode()
    assert "spreadwatch_price{" in text  # the other parts are still there


def series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_cardinality_with_3_tickers_20_opportunities_50_positions():
    snap = snapshot(tickers=("NDX", "SPX", "RUT"), n_opps=20, n_positions=50)
    snap = dataclasses.replace(snap, config=dataclasses.replace(
        snap.config, tickers={**snap.config.tickers, "RUT": snap.config.tickers["SPX"]}))
    count = len(series(generate_latest(registry_for(snap)).decode()))
    # Stated in docs/exporter.md; a change here is a change of the cardinality contract.
    assert count == 1943, count


def documented_metric_names() -> set[str]:
    """The metric column of the README's metrics tables: each row's first cell, `spreadwatch_...`, exactly."""
    return set(re.findall(r"^\| `(spreadwatch_[a-z0-9_]+)`", DOCS.read_text(encoding="utf-8"), flags=re.M))


def test_every_emitted_metric_is_in_the_contract():
    text = generate_latest(registry_for(snapshot())).decode()
    names = {sample.name for sample in exposition_samples(text)}  # a counter's samples end in _total
    assert len(names) > 30
    documented = documented_metric_names()
    assert "spreadwatch_source_errors_total" in documented and "spreadwatch_opportunity_score" in documented
    assert sorted(names - documented) == []


def test_golden_exposition():
    text = generate_latest(registry_for(snapshot())).decode()
    assert text == GOLDEN.read_text(), "exposition changed: review and regenerate tests/data/golden_metrics.txt"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) not installed")
def test_promtool_check_metrics_is_silent():
    text = generate_latest(registry_for(snapshot(n_opps=20, n_positions=5))).decode()
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_short_strike_distances_in_points_ratio_and_expected_moves():
    # NDX at 19,800 with the VXN at 25, short put 19,500, 2 whole sessions after today plus half of today's session
    # still to trade: an expected move of 19,800 x 0.25 x sqrt(2.5 / 252) = 493.03 points.
    ctx = dataclasses.replace(context(price=19800.0), vol_index=25.0)
    snap = snapshot(n_positions=1, contexts={"NDX": ctx}, calendar=CalendarFacts("open", True, True, 11700.0, 0.5))
    reg = registry_for(snap)
    labels = {"position_id": "p0000", "ticker": "NDX", "spread_type": "put_spread", "band": "P98", "leg": "short_put"}
    assert reg.get_sample_value("spreadwatch_position_short_strike_distance_points", labels) == 300.0
    assert reg.get_sample_value("spreadwatch_position_short_strike_distance_ratio", labels) == pytest.approx(
        300.0 / 19800.0)
    assert reg.get_sample_value("spreadwatch_position_short_strike_distance_expected_moves", labels) == pytest.approx(
        300.0 / 493.0318, rel=1e-6)
    assert reg.get_sample_value("spreadwatch_position_short_strike_distance_points",
                                {**labels, "leg": "short_call"}) is None  # a put spread has no short call


def test_no_short_strike_distance_on_a_stale_price_or_an_expired_position():
    stale = snapshot(n_positions=1, contexts={"NDX": context(at=NOW - timedelta(minutes=10))})
    expired = snapshot(n_positions=1, positions=(OpenPosition(position(0), -1, None),))
    for snap in (stale, expired):
        text = generate_latest(registry_for(snap)).decode()
        assert "spreadwatch_position_short_strike_distance_points{" not in text


def test_the_model_mark_is_exported_with_source_model_beside_the_logged_pnl():
    from spreadwatch.domain.marks import model_mark

    ctx = dataclasses.replace(context(price=19800.0), vol_index=25.0)
    snap = snapshot(n_positions=1, contexts={"NDX": ctx}, calendar=CalendarFacts("open", True, True, 11700.0, 0.5))
    reg = registry_for(snap)
    labels = {"position_id": "p0000", "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}
    expected = model_mark(position(0), 19800.0, 25.0, 2.5)  # 2 sessions after today + half of today
    assert expected is not None
    model = {**labels, "source": "model"}
    assert reg.get_sample_value("spreadwatch_position_estimated_pnl_dollars", model) == pytest.approx(expected.pnl)
    assert reg.get_sample_value("spreadwatch_position_estimated_value_dollars", model) == pytest.approx(
        expected.value)
    assert reg.get_sample_value("spreadwatch_position_short_delta", {**model, "leg": "short_put"}) == pytest.approx(
        expected.short_deltas["short_put"])
    assert 0 < reg.get_sample_value("spreadwatch_position_otm_probability_ratio", model) < 1
    assert reg.get_sample_value("spreadwatch_position_pnl_dollars", labels) == 50.0  # the logged P&L, untouched


# ---- the page served at /metrics: rendered once per snapshot, equal in content to generate_latest ------------------
def _samples(text: bytes) -> list[tuple]:
    return sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in exposition_samples(text.decode()))


@pytest.mark.parametrize("seconds", [0, 17.25, 179, 200, 86_400, 1_500_000, -900])
# fresh, aging, one past stale_after, a day on, ages past 1e6 s (Go's exponent form), a clock before the P&L update
def test_the_served_page_holds_exactly_the_samples_generate_latest_gives(seconds):
    import gzip

    from spreadwatch.edges.collector import Exposition

    snap = snapshot(tickers=("NDX", "SPX"), n_opps=20, n_positions=30)
    now = NOW + timedelta(seconds=seconds)
    collector = SnapshotCollector(lambda: snap, lambda: now)
    exposition = Exposition(collector)
    exposition.prepare(snap)  # rendered at the snapshot's own instant, served later
    page = exposition.body()
    reference = generate_latest(registry_for(snap, now=now))
    assert _samples(page) == _samples(reference)
    assert len(page) == len(reference)  # the same lines, the clocked families moved to the end
    assert gzip.decompress(exposition.body(gzipped=True)) == page


def test_a_snapshot_is_rendered_once_and_each_scrape_only_appends_the_ages():
    from spreadwatch.edges.collector import Exposition

    snap = snapshot(n_positions=3)
    clock = [NOW]
    collector = SnapshotCollector(lambda: snap, lambda: clock[0])
    renders = []
    families = collector.families
    collector.families = lambda s, now: renders.append(now) or families(s, now)  # type: ignore[method-assign]
    exposition = Exposition(collector)
    exposition.prepare(snap)
    first = exposition.body()
    clock[0] = NOW + timedelta(seconds=90)
    later = exposition.body()
    assert renders == [NOW]  # once, when published; the scrapes 90 s apart rendered nothing
    assert sample_of(later, "spreadwatch_position_pnl_age_seconds", position_labels(0)) == 690
    assert sample_of(first, "spreadwatch_position_pnl_age_seconds", position_labels(0)) == 600
    assert sample_of(later, "spreadwatch_task_age_seconds", {"task": "market"}) == 90
    clock[0] = NOW + timedelta(seconds=200)  # past stale_after: the price goes, as it goes from the collector
    stale = exposition.body()
    assert renders == [NOW, clock[0]]
    assert sample_of(stale, "spreadwatch_price", {"ticker": "NDX"}) is None
    assert sample_of(stale, "spreadwatch_source_up", {"source": "^NDX"}) == 0


def position_labels(i):
    return {"position_id": f"p{i:04d}", "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}


def sample_of(text: bytes, name, labels):
    from realstack import sample_value

    return sample_value(text.decode(), name, labels)


def test_the_exit_pnl_is_the_logged_pnl_while_fresh_then_the_model_mark_with_its_source_and_age():
    from spreadwatch.domain.marks import model_mark

    ctx = dataclasses.replace(context(price=19800.0), vol_index=25.0)
    calendar = CalendarFacts("open", True, True, 11700.0, 0.5)
    labels = {"position_id": "p0000", "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}
    fresh = registry_for(snapshot(n_positions=1, contexts={"NDX": ctx}, calendar=calendar))
    assert fresh.get_sample_value("spreadwatch_position_exit_pnl_dollars", {**labels, "source": "logged"}) == 50.0
    assert fresh.get_sample_value("spreadwatch_position_exit_pnl_age_seconds", {**labels, "source": "logged"}) == 600
    assert fresh.get_sample_value("spreadwatch_position_exit_pnl_dollars", {**labels, "source": "model"}) is None

    old = position(0).replace(pnl_updated_at=NOW - timedelta(minutes=121))  # past pnl_stale_after 120
    stale_logged = snapshot(n_positions=1, contexts={"NDX": ctx}, calendar=calendar,
                            positions=(OpenPosition(old, 2, NOW + timedelta(days=3)),))
    reg = registry_for(stale_logged, now=NOW + timedelta(seconds=15))
    expected = model_mark(old, 19800.0, 25.0, 2.5)
    assert expected is not None and expected.pnl != 50.0
    model = {**labels, "source": "model"}
    assert reg.get_sample_value("spreadwatch_position_exit_pnl_dollars", model) == pytest.approx(expected.pnl)
    assert reg.get_sample_value("spreadwatch_position_exit_pnl_age_seconds", model) == 45  # the price is 30 s old
    assert reg.get_sample_value("spreadwatch_position_exit_pnl_dollars", {**labels, "source": "logged"}) is None
    assert reg.get_sample_value("spreadwatch_position_estimated_vol_index", {**model, "symbol": "^VXN"}) == 25.0
    assert reg.get_sample_value("spreadwatch_position_pnl_dollars", labels) == 50.0  # the logged series stays

    logged_only = dataclasses.replace(stale_logged, config=dataclasses.replace(
        Config(), exits=dataclasses.replace(Config().exits, pnl_sources=("logged",))))
    reg = registry_for(logged_only)
    assert reg.get_sample_value("spreadwatch_position_exit_pnl_dollars", {**labels, "source": "logged"}) == 50.0
    assert reg.get_sample_value("spreadwatch_position_exit_pnl_dollars", model) is None
    assert reg.get_sample_value("spreadwatch_position_estimated_pnl_dollars", model) == pytest.approx(expected.pnl)


def test_without_a_current_mark_the_exit_pnl_is_the_old_logged_pnl_unless_the_order_leaves_it_out():
    old = position(0).replace(pnl_updated_at=NOW - timedelta(hours=5))
    no_vol = snapshot(n_positions=1, positions=(OpenPosition(old, 2, NOW + timedelta(days=3)),))  # no vol index
    labels = {"position_id": "p0000", "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}
    reg = registry_for(no_vol)
    assert reg.get_sample_value("spreadwatch_position_exit_pnl_dollars", {**labels, "source": "logged"}) == 50.0
    assert reg.get_sample_value("spreadwatch_position_exit_pnl_age_seconds", {**labels, "source": "logged"}) == 18000
    marks_only = dataclasses.replace(no_vol, config=dataclasses.replace(
        Config(), exits=dataclasses.replace(Config().exits, pnl_sources=("model",))))
    text = generate_latest(registry_for(marks_only)).decode()
    assert "spreadwatch_position_exit_pnl_dollars{" not in text


def test_the_display_zone_is_exported_at_the_real_clock():
    # A replayed summer day watched in winter: the alerts' instants are Prometheus's, on the real clock, so the
    # offsets the notifications shift them by are the real clock's (Pacific standard time), not the replay's.
    snap = snapshot()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snap, lambda: datetime(2026, 7, 1, 16, tzinfo=UTC),
                                        wall=lambda: datetime(2026, 12, 3, 13, tzinfo=UTC)))
    (labels, value), = [(s.labels, s.value) for m in registry.collect() if m.name == "spreadwatch_display_zone_info"
                        for s in m.samples]
    assert value == 1
    assert labels == {"zone": "America/Los_Angeles", "abbreviation": "PT", "offset_seconds": "-28800",
                      "changed": "2026-11-01T09:00:00Z", "previous_offset_seconds": "-25200",
                      "previous_abbreviation": "PT"}
    london = dataclasses.replace(snap, config=dataclasses.replace(snap.config, display_timezone="Europe/London"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: london, lambda: NOW, wall=lambda: datetime(2026, 7, 1, tzinfo=UTC)))
    (labels,) = [s.labels for m in registry.collect() if m.name == "spreadwatch_display_zone_info" for s in m.samples]
    assert (labels["abbreviation"], labels["offset_seconds"], labels["changed"], labels["previous_abbreviation"]) == \
        ("BST", "3600", "2026-03-29T01:00:00Z", "GMT")
