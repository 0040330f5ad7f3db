"""`spreadwatch scan`: JSON keys, what-if overrides without a network, one-line errors, and the defaults working
together: the bundled SPX day and a default `grid build` offer setups in the default entry window."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from spreadwatch.edges.cli import cli

KEYS = {"id", "rank", "dte", "band", "spread_type", "flow_mode", "spread_width", "entry_time_et", "win_rate",
        "exit_win_rate", "exit_win_rate_low", "exit_win_rate_high", "avg_pnl", "exit_avg_pnl", "expected_return",
        "exit_expected_return", "roi", "sharpe", "trade_score", "credit", "max_risk", "in_window",
        "blocked_by_risk", "strikes", "expiry", "regime", "trend", "basis", "n_effective"}
OPEN = "2019-01-02T14:35:00Z"  # the bundled day, 06:35 PT: five minutes after the open, in the default window
LATER = "2019-01-02T16:00:00Z"  # 08:00 PT: the regime has turned medium


def invoke(*args):
    return CliRunner().invoke(cli, ["scan", *args])


def scan_json(tmp_path, *args, at=OPEN):
    result = invoke("--at", at, "--json", "--db", str(tmp_path / "x"), *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_has_the_contract_keys_held_and_managed(tmp_path):
    data = scan_json(tmp_path)
    assert set(data) >= {"regime", "skipped_rows", "skipped_by_reason", "removed_by_filter", "opportunities"}
    assert data["regime"] == "low" and data["skipped_rows"] == 0
    assert data["opportunities"], "the bundled day has setups in window at its open"
    for o in data["opportunities"]:
        assert set(o) >= KEYS
        assert o["basis"] == "managed" and o["credit_source"] == "model"
        assert 0 <= o["exit_win_rate_low"] <= o["exit_win_rate"] <= o["exit_win_rate_high"] <= 1
        assert o["exit_win_rate"] < o["win_rate"]  # the exit rules cost win rate: both are shown
        assert o["exit_expected_return"] == o["exit_avg_pnl"] / o["max_risk"] or abs(
            o["exit_expected_return"] - o["exit_avg_pnl"] / o["max_risk"]) < 1e-6
        assert o["exit_expected_return"] < o["roi"]
    assert [o["rank"] for o in data["opportunities"]] == list(range(1, len(data["opportunities"]) + 1))
    assert len({o["id"] for o in data["opportunities"]}) == len(data["opportunities"])


def test_the_bundled_day_offers_in_window_setups_under_the_default_settings(tmp_path):
    data = scan_json(tmp_path)
    in_window = [o for o in data["opportunities"] if o["in_window"]]
    assert in_window and all(o["entry_time_local"] == "06:30" for o in in_window)


def test_when_nothing_passes_scan_says_what_each_filter_removed(tmp_path):
    result = invoke("--at", LATER, "--db", str(tmp_path / "x"))
    assert result.exit_code == 0
    assert "regime medium): 0 configs pass the filters" in result.output
    for name in ("regime", "trend", "flow", "min_win_rate", "min_roi", "min_sharpe", "min_composite_score"):
        assert f"  removed by {name}: " in result.output
    assert "  passing but outside their entry window now: 0" in result.output
    assert "  impossible grid rows skipped: 0" in result.output
    data = scan_json(tmp_path, at=LATER)
    removed = data["removed_by_filter"]
    assert removed["regime"] > 0 and removed["window"] == 0 and removed["impossible"] == 0
    assert data["opportunities"] == []


def test_vix_override_sets_the_regime_and_price_sets_strikes(tmp_path):
    data = scan_json(tmp_path, "--vix", "13", "--price", "2600", "--all")
    assert data["regime"] == "low"
    strikes = [o["strikes"] for o in data["opportunities"] if o["strikes"]]
    assert strikes and all(s["short_put"] < 2600 < s["short_call"] for s in strikes)
    assert all(s["short_put"] % 5 == 0 for s in strikes)  # SPX's strike increment


def test_all_lists_every_width_of_a_setup(tmp_path):
    top = scan_json(tmp_path, "--vix", "11")["opportunities"]
    everything = scan_json(tmp_path, "--vix", "11", "--all")["opportunities"]
    assert {o["id"] for o in top} <= {o["id"] for o in everything} and len(everything) > len(top)
    setups = {(o["dte"], o["band"], o["spread_type"], o["flow_mode"]) for o in top}
    assert len(setups) == len(top)  # one width per setup without --all


def test_text_output_marks_in_window_setups(tmp_path):
    result = invoke("--at", OPEN, "--db", str(tmp_path / "x"))
    assert result.exit_code == 0
    assert "SYNTHETIC" in result.output and "[IN WINDOW]" in result.output
    assert "#1: " in result.output and "held" in result.output and "managed" in result.output


def test_bad_grid_is_a_one_line_error(tmp_path):
    bad = tmp_path / "grid.csv"
    bad.write_text("a,b\n1,2\n")
    result = invoke("--grid", str(bad), "--at", OPEN)
    assert result.exit_code == 1
    assert "not a known grid format" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_flow_override_changes_which_sides_qualify(tmp_path):
    up = scan_json(tmp_path, "--vix", "13", "--flow", "up", "--all")["opportunities"]
    flat = scan_json(tmp_path, "--vix", "13", "--flow", "flat", "--all")
    assert {o["spread_type"] for o in up} == {"iron_condor"}  # low: with_flow rows; condors on any move
    assert flat["opportunities"] == []  # flat flow admits only neutral rows, and low recommends none


def test_the_originals_grid_is_read_and_offers_nothing_impossible(tmp_path):
    grid = Path(__file__).parent / "data" / "grids" / "grid_trading_ready.csv"
    data = scan_json(tmp_path, "--grid", str(grid), "--vix", "13", "--flow", "down")
    assert data["opportunities"] == [] and data["skipped_rows"] == 4872


def test_status_shows_the_opportunities_and_skipped_rows_by_reason(tmp_path):
    result = CliRunner().invoke(cli, ["status", "--at", OPEN, "--json", "--db", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["scan_error"] is None and data["skipped_rows"] == 0 and data["skipped_by_reason"] == {}
    assert data["opportunities"] and set(data["opportunities"][0]) >= KEYS
    text = CliRunner().invoke(cli, ["status", "--at", OPEN, "--db", str(tmp_path / "x")]).output
    assert "Opportunities (SPX" in text and "#1: " in text


def test_status_reports_a_broken_grid_without_failing(tmp_path):
    bad = tmp_path / "grid.csv"
    bad.write_text("a,b\n1,2\n")
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(f"paths:\n  grid: {bad}\n")
    result = CliRunner().invoke(cli, ["--config", str(cfg), "status", "--at", OPEN, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["opportunities"] is None and "not a known grid format" in data["scan_error"]


def test_a_default_grid_build_offers_setups_in_the_default_window_of_an_ordinary_session(tmp_path):
    # Every setting at its default: the builder's history (arch's S&P 500 and VIX, as the bundled grid is made),
    # then a scan at 06:35 PT of an ordinary session in the low regime (the what-if VIX), flow up.
    import importlib.util

    script = Path(__file__).parents[1] / "scripts" / "make_bundled_grid.py"
    spec = importlib.util.spec_from_file_location("make_bundled_grid", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    history = tmp_path / "history.csv"
    module.write_history(history)
    out = tmp_path / "grid.csv"
    built = CliRunner().invoke(cli, ["grid", "build", "--ticker", "SPX", "--source", f"csv:{history}",
                                     "--start", "2016-01-04", "--dte", "1,3,5", "--out", str(out)])
    assert built.exit_code == 0, built.output
    data = scan_json(tmp_path, "--grid", str(out), "--vix", "13.5", "--flow", "up", "--price", "2500",
                     at="2019-01-08T14:35:00Z")
    assert [o for o in data["opportunities"] if o["in_window"]], data["removed_by_filter"]


def test_no_two_series_on_a_real_scrape_share_a_label_set(tmp_path):
    # The exporter on the bundled day at its open, scraped over HTTP: every sample's name and labels are unique.
    import urllib.request
    from datetime import datetime

    from exporter_support import Running
    from spreadwatch.app.clock import ReplayClock
    from spreadwatch.app.service import Service
    from spreadwatch.config import Config, bundled_path
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.gridfile import grid_path
    from spreadwatch.edges.providers.replay import ReplayProvider
    from spreadwatch.edges.store import PositionBook

    db = tmp_path / "book.db"
    PositionBook(db).close()
    config = Config()
    service = Service(config, ReplayProvider(bundled_path("replay_sample.csv"), bundled=True),
                      ReplayClock(datetime.fromisoformat("2019-01-02T14:33:00+00:00"), 60.0),
                      MarketCalendar.of(config), tickers=("SPX",), db_path=db,
                      grid_path=grid_path(""))
    service.step(datetime.fromisoformat("2019-01-02T14:33:00+00:00"), {"market", "positions", "scan"})
    with Running(service) as running, urllib.request.urlopen(f"{running.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = [line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")]
    assert len(samples) == len(set(samples))
    opportunity = [s for s in samples if s.startswith("spreadwatch_opportunity_exit_win_ratio{")]
    assert opportunity, "the scrape carries the managed win rate of the setups in window"
