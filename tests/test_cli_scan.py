"""`spreadwatch scan`: JSON keys, what-if overrides without a network, one-line errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from spreadwatch.edges.cli import cli

KEYS = {"id", "rank", "dte", "band", "spread_type", "flow_mode", "spread_width", "entry_time_et", "win_rate", "roi",
        "sharpe", "trade_score", "credit", "max_risk", "in_window", "blocked_by_risk", "strikes", "expiry"}


def invoke(*args):
    return CliRunner().invoke(cli, ["scan", *args])


def test_json_has_the_contract_keys_and_fractions(tmp_path):
    result = invoke("--at", "2026-11-24T15:30:00Z", "--json", "--db", str(tmp_path / "none.db"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) >= {"regime", "skipped_rows", "opportunities"}
    assert data["skipped_rows"] == 1727
    assert data["opportunities"], "the bundled day has setups in window at 07:30 PT"
    for o in data["opportunities"]:
        assert set(o) >= KEYS
        assert 0 <= o["win_rate"] <= 1
        assert o["credit_source"] is None  # the bundled grid is the original's: its credit source is not recorded
    assert [o["rank"] for o in data["opportunities"]] == list(range(1, len(data["opportunities"]) + 1))


def test_vix_override_sets_the_regime_and_price_sets_strikes(tmp_path):
    result = invoke("--vix", "18.5", "--price", "20100", "--at", "2026-11-24T15:30:00Z", "--json",
                    "--db", str(tmp_path / "none.db"))
    data = json.loads(result.output)
    assert data["regime"] == "medium"
    strikes = [o["strikes"] for o in data["opportunities"] if o["strikes"]]
    assert strikes and all(s.get("short_put", 0) < 20100 for s in strikes)


def test_all_lists_more_than_top_n(tmp_path):
    top = json.loads(invoke("--at", "2026-11-24T15:30:00Z", "--json", "--db", str(tmp_path / "x")).output)
    everything = json.loads(invoke("--at", "2026-11-24T15:30:00Z", "--json", "--all", "--db",
                                   str(tmp_path / "x")).output)
    assert len(top["opportunities"]) == 20
    assert len(everything["opportunities"]) > 20


def test_text_output_marks_in_window_setups(tmp_path):
    result = invoke("--at", "2026-11-24T15:30:00Z", "--db", str(tmp_path / "x"))
    assert result.exit_code == 0
    assert "SYNTHETIC" in result.output and "[IN WINDOW]" in result.output
    assert "#1: " in result.output


def test_bad_grid_is_a_one_line_error(tmp_path):
    bad = tmp_path / "grid.csv"
    bad.write_text("a,b\n1,2\n")
    result = invoke("--grid", str(bad), "--at", "2026-11-24T15:30:00Z")
    assert result.exit_code == 1
    assert "not a known grid format" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def scan_json(tmp_path, *args):
    result = invoke("--at", "2026-11-24T15:30:00Z", "--json", "--all", "--db", str(tmp_path / "x"), *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_flow_override_changes_which_sides_qualify(tmp_path):
    down = {o["spread_type"] for o in scan_json(tmp_path, "--vix", "18.5", "--flow", "down")["opportunities"]}
    up = {o["spread_type"] for o in scan_json(tmp_path, "--vix", "18.5", "--flow", "up")["opportunities"]}
    flat = scan_json(tmp_path, "--vix", "18.5", "--flow", "flat")
    assert "put_spread" in down and "put_spread" not in up  # medium regime: with_flow rows only
    assert flat["opportunities"] == []  # flat flow admits only neutral rows, and medium recommends none


def test_trend_up_scan_offers_no_put_spreads(tmp_path):
    data = scan_json(tmp_path, "--vix", "13", "--trend", "up", "--flow", "up")
    assert data["regime"] == "low"
    types = {o["spread_type"] for o in data["opportunities"]}
    assert types and "put_spread" not in types


def test_custom_grid_in_an_original_format(tmp_path):
    from pathlib import Path

    grid = Path(__file__).parent / "data" / "grids" / "grid_dte1_sample.csv"
    data = scan_json(tmp_path, "--grid", str(grid), "--vix", "18.5", "--flow", "down")
    assert all(o["dte"] == 1 for o in data["opportunities"])
    assert isinstance(data["skipped_rows"], int)


def test_status_shows_the_opportunities(tmp_path):
    result = CliRunner().invoke(cli, ["status", "--at", "2026-11-24T15:30:00Z", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["scan_error"] is None and data["skipped_rows"] == 1727
    assert data["opportunities"] and set(data["opportunities"][0]) >= KEYS
    text = CliRunner().invoke(cli, ["status", "--at", "2026-11-24T15:30:00Z"]).output
    assert "Opportunities (NDX" in text and "#1: " in text


def test_status_reports_a_broken_grid_without_failing(tmp_path):
    bad = tmp_path / "grid.csv"
    bad.write_text("a,b\n1,2\n")
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(f"paths:\n  grid: {bad}\n")
    result = CliRunner().invoke(cli, ["--config", str(cfg), "status", "--at", "2026-11-24T15:30:00Z", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["opportunities"] is None and "not a known grid format" in data["scan_error"]
