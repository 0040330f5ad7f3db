"""The loop: replay clock cadences, CLI changes visible within one position cycle, clean shutdown."""

from __future__ import annotations

from click.testing import CliRunner

from exporter_support import (
    START,
    Running,
    http_get,
    make_service,
    metrics_or_empty,
    sample,
    spreadwatch_process,
)
from realstack import free_port, sample_value, wait_until
from spreadwatch.edges.cli import cli


def test_cadences_run_on_the_replay_clock(tmp_path):
    service = make_service(tmp_path)
    with Running(service) as running:
        first = service.snapshot.tasks["market"].last_success
        assert first == START  # the first cycle runs every task at the start instant
        running.step(10)
        runs = service.snapshot.tasks["market"].last_success
        # Ten waits of one market interval (60 s) each: ten market cycles, ten replayed minutes.
        assert 300 <= (runs - first).total_seconds() <= 900
        assert (runs - first).total_seconds() == 10 * service.intervals["market"]
        scan_runs = service.snapshot.tasks["scan"].last_success
        assert scan_runs is not None
        assert (scan_runs - first).total_seconds() == 2 * service.intervals["scan"]  # every 300 s: at +5 and +10 min


def test_cli_add_update_close_show_up_within_one_position_cycle(tmp_path, monkeypatch):
    db = tmp_path / "book.db"
    service = make_service(tmp_path, db=db)
    monkeypatch.setenv("SPREADWATCH_NOW", START.isoformat())  # the CLI's "now": the replayed instant
    runner = CliRunner()
    cycle = service.intervals["positions"]
    with Running(service) as running:
        assert sample(service, "spreadwatch_portfolio_positions", {"status": "open"}) == 0
        result = runner.invoke(cli, ["positions", "add", "--db", str(db), "--dte", "3", "--band", "P98",
                                     "--spread", "put_spread", "--flow-mode", "with_flow", "--contracts", "1",
                                     "--credit", "150", "--short-put", "19800", "--long-put", "19700",
                                     "--expiry", "2026-12-31", "--ticker", "NDX"])
        assert result.exit_code == 0, result.output
        # Within one position cycle, on the replay clock.
        took = running.until(lambda: sample(service, "spreadwatch_portfolio_positions", {"status": "open"}) == 1,
                             within=cycle)
        assert took <= cycle
        ids = [p.position.id for p in service.snapshot.positions]
        labels = {"position_id": ids[0], "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}
        assert sample(service, "spreadwatch_position_credit_dollars", labels) == 150
        assert sample(service, "spreadwatch_position_profit_target_dollars", labels) == 75
        assert sample(service, "spreadwatch_position_stop_loss_dollars", labels) == -300
        runner.invoke(cli, ["positions", "update", ids[0], "--db", str(db), "--pnl", "80"])
        running.until(lambda: sample(service, "spreadwatch_position_pnl_dollars", labels) == 80, within=cycle)
        runner.invoke(cli, ["positions", "close", ids[0], "--db", str(db), "--pnl", "80"])
        # Closed positions vanish from the position series.
        running.until(lambda: sample(service, "spreadwatch_position_pnl_dollars", labels) is None, within=cycle)
        assert sample(service, "spreadwatch_portfolio_realized_pnl_dollars") == 80


def test_sigterm_exits_zero_and_replay_is_labelled(tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("SPREADWATCH_DB", str(tmp_path / "book.db"))
    config = tmp_path / "config.yml"
    config.write_text(f"paths:\n  log_file: {tmp_path / 'events.log'}\n")
    url = f"http://127.0.0.1:{port}"
    with spreadwatch_process(tmp_path, "--config", str(config), "run", "--listen", f"127.0.0.1:{port}",
                             "--speed", "60",
                             "--start", "2019-01-02T14:32:00Z") as exporter:  # the bundled SPX day, in its entry window
        def priced():
            text = metrics_or_empty(url)
            return text if sample_value(text, "spreadwatch_price", {"ticker": "SPX"}) is not None else None
        text = wait_until(priced, 60, "a price on /metrics")
        assert 'spreadwatch_build_info{source="replay",version=' in text
        assert "REPLAY" in http_get(url + "/")[1]
    assert exporter.proc.returncode == 0, exporter.log()  # SIGTERM: a clean exit
    assert "REPLAY, not live data" in exporter.log()
    assert "[OPPORTUNITY]" in (tmp_path / "events.log").read_text()


def test_several_tickers_are_labels_in_one_process_and_a_ticker_without_data_is_down(tmp_path):
    from datetime import datetime

    service = make_service(tmp_path, tickers=("NDX", "SPX"), fetch_deadline=30.0)
    service.step(datetime.fromisoformat("2026-11-24T15:30:00+00:00"), {"market", "positions", "scan"})
    # The NDX replay day has NDX's symbols only: SPX is reported down and unknown, never filled in.
    assert sample(service, "spreadwatch_price", {"ticker": "NDX"}) is not None
    assert sample(service, "spreadwatch_price", {"ticker": "SPX"}) is None
    assert sample(service, "spreadwatch_source_up", {"source": "^NDX"}) == 1
    assert sample(service, "spreadwatch_source_up", {"source": "^GSPC"}) == 0
    assert sample(service, "spreadwatch_opportunities", {"ticker": "NDX"}) is not None


def test_event_log_reads_like_the_original_alerts_log(tmp_path, caplog):
    from datetime import datetime

    service = make_service(tmp_path, fetch_deadline=30.0)
    with caplog.at_level("INFO", logger="spreadwatch.events"):
        for at in ("2026-11-24T15:30:00+00:00", "2026-11-24T15:45:00+00:00"):  # 10:30 and 10:45 ET
            service.step(datetime.fromisoformat(at), {"market", "positions", "scan"})
    lines = [r.getMessage() for r in caplog.records if r.name == "spreadwatch.events"]
    # The NDX day's VIX crosses 16 at 10:39 ET: one change, stamped in the display zone (PST).
    changes = [line for line in lines if "Regime change" in line]
    assert len(changes) == 1, lines
    assert changes[0].startswith("[2026-11-24 07:45:00] [WARNING] Regime change: LOW → MEDIUM (VIX 16.")
