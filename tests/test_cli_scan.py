"""`spreadwatch scan`: JSON keys, what-if overrides without a network, one-line errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from spreadwatch.cli import cli

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
