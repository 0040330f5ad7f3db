"""One display zone (`display_timezone`) in every human text, each time with its zone's abbreviation (07:30 PT,
10:30 ET): the event log, the landing page, the opportunity line of a notification, `status`, `scan` and
`positions history`. Machine formats (JSON, metrics) stay UTC."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from exporter_support import FaultyProvider, Running, http_get, make_service, scrape
from spreadwatch.config import Config, Hours, bundled_path
from spreadwatch.domain.display import local_time, zone_abbreviation
from spreadwatch.edges.cli import cli
from spreadwatch.edges.providers.replay import ReplayProvider

# New York as the display zone: the HH:MM settings are read in it too, so the hours are the session's own.
NEW_YORK = """\
display_timezone: America/New_York
hours:
  trading_start: "09:30"
  trading_end: "16:00"
  entry_start: "09:30"
  entry_end: "11:59"
"""


def new_york() -> Config:
    hours = Hours(trading_start=datetime(2000, 1, 1, 9, 30).time(), trading_end=datetime(2000, 1, 1, 16, 0).time(),
                  entry_start=datetime(2000, 1, 1, 9, 30).time(), entry_end=datetime(2000, 1, 1, 11, 59).time())
    return replace(Config(), display_timezone="America/New_York", hours=hours)


@pytest.mark.parametrize("zone,winter,summer", [
    ("America/Los_Angeles", "07:30 PT", "08:30 PT"), ("America/New_York", "10:30 ET", "11:30 ET"),
    ("America/Chicago", "09:30 CT", "10:30 CT"), ("America/Anchorage", "06:30 AKT", "07:30 AKT"),
    ("Europe/Berlin", "16:30 CET", "17:30 CEST"), ("UTC", "15:30 UTC", "15:30 UTC"),
    ("America/Sao_Paulo", "12:30 UTC-03:00", "12:30 UTC-03:00"),  # no abbreviation: the offset
])
def test_a_time_is_written_in_the_zone_with_its_abbreviation(zone, winter, summer):
    assert local_time(datetime(2026, 11, 24, 15, 30, tzinfo=UTC), ZoneInfo(zone)) == winter
    assert local_time(datetime(2026, 7, 1, 15, 30, tzinfo=UTC), ZoneInfo(zone)) == summer


def test_north_american_abbreviations_are_the_same_all_year():
    la = ZoneInfo("America/Los_Angeles")
    assert {zone_abbreviation(datetime(2026, m, 1, 12, tzinfo=UTC).astimezone(la)) for m in (1, 7)} == {"PT"}


@pytest.mark.slow  # over 5 s on a busy 2-core machine: the bundled grid and a few replayed cycles
def test_event_log_landing_page_and_notification_line_use_the_display_zone(tmp_path, caplog):
    provider = ReplayProvider(bundled_path("replay_sample.csv"), bundled=True)
    service = make_service(tmp_path, FaultyProvider(provider), config=new_york(), tickers=("SPX",),
                           grid=bundled_path("grid_spx.csv"), start=datetime(2019, 1, 2, 14, 28, tzinfo=UTC))
    caplog.set_level(logging.INFO, logger="spreadwatch.events")
    with Running(service) as running:
        running.until(lambda: service.snapshot.window_setups, within=6 * 60)
        page = http_get(running.url + "/")[1]
        metrics = scrape(running.url)
    events = [r.getMessage() for r in caplog.records if r.name == "spreadwatch.events"]
    assert any(re.match(r"\[2019-01-02 09:31:00 ET\] \[WARNING\] Regime change: HIGH → LOW", e) for e in events), events
    found = next(e for e in events if "[OPPORTUNITY]" in e)
    assert found.startswith("[2019-01-02 09:31:00 ET] [OPPORTUNITY] Found 2 trade opportunity(ies) on SPX, "
                            "entry window 09:30 ET\n  #1: 1DTE P98 IRON_CONDOR 25 wide @ 09:30 ET | "), found
    assert "2019-01-02 09:31:00 ET (2019-01-02T14:31:00Z)" in page, page
    assert "SPX #1: 1DTE P98 IRON_CONDOR 25 wide @ 09:30 ET" in page, page
    assert 'window_local="09:30 ET"' in metrics and "@ 09:30 ET |" in metrics  # the notification's text
    # The metrics' times stay UTC epoch seconds.
    assert re.search(r"^spreadwatch_clock_timestamp_seconds 1\.5464394\d*e\+09$", metrics, re.M), metrics


@pytest.fixture()
def cli_config(tmp_path, no_network, monkeypatch):
    monkeypatch.setenv("SPREADWATCH_CONFIG", "")
    path = tmp_path / "ny.yml"
    path.write_text(NEW_YORK, encoding="utf-8")
    return path


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow  # three commands, each loading the bundled grid: over 5 s on a busy 2-core machine
def test_status_and_scan_write_the_display_zone_and_their_json_stays_utc(cli_config, tmp_path):
    db = str(tmp_path / "book.db")
    text = run("--config", str(cli_config), "status", "--at", "2019-01-02T14:35:00Z", "--db", db)
    assert "SPX at 2019-01-02 09:35 ET (2019-01-02T14:35:00Z)" in text
    assert "regime: low (from high at 09:31 ET)" in text
    assert "#1: 1DTE P98 IRON_CONDOR @ 09:30 ET |" in text
    text = run("--config", str(cli_config), "scan", "--at", "2019-01-02T14:35:00Z", "--db", db)
    assert "; at 2019-01-02 09:35 ET (2019-01-02T14:35:00Z)" in text and "@ 09:30 ET |" in text
    scanned = json.loads(run("--config", str(cli_config), "scan", "--at", "2019-01-02T14:35:00Z", "--json",
                             "--db", db))
    assert scanned["opportunities"][0]["entry_time_local"] == "09:30"  # JSON: HH:MM, no prose


def test_positions_history_writes_the_display_zone_and_its_json_stays_utc(cli_config, tmp_path, monkeypatch):
    monkeypatch.setenv("SPREADWATCH_NOW", "2026-11-24T15:40:00Z")
    db = str(tmp_path / "book.db")
    added = json.loads(run("--config", str(cli_config), "positions", "add", "--ticker", "SPX", "--dte", "3",
                           "--band", "P97", "--spread", "put_spread", "--flow-mode", "with_flow", "--contracts", "1",
                           "--credit", "250", "--risk", "2250", "--short-put", "5800", "--long-put", "5775",
                           "--db", db, "--json"))
    text = run("--config", str(cli_config), "positions", "history", added["id"], "--db", db)
    assert re.search(r"^  2026-11-24 10:40:00 ET  add ", text, re.M), text
    rows = json.loads(run("--config", str(cli_config), "positions", "history", added["id"], "--db", db, "--json"))
    assert rows[0]["time"].startswith("2026-11-24T15:40:00")


def test_console_lines_are_stamped_in_the_display_zone():
    from spreadwatch.app.service import DisplayZoneFormatter

    record = logging.LogRecord("spreadwatch", logging.INFO, __file__, 1, "serving", None, None)
    record.created = datetime(2026, 11, 24, 15, 30, 5, tzinfo=UTC).timestamp()
    line = DisplayZoneFormatter("America/Los_Angeles", "%(asctime)s %(levelname)s %(name)s: %(message)s").format(record)
    assert line == "2026-11-24 07:30:05 PT INFO spreadwatch: serving"
