"""HTTP endpoints: landing page (escaped, labelled), /metrics, /healthz before and after the first cycle."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from exporter_support import FaultyProvider, Running, http_get, make_service
from spreadwatch.edges.server import parse_listen
from spreadwatch.errors import InputError


def test_healthz_is_503_until_every_task_succeeded_then_200(tmp_path):
    service = make_service(tmp_path)
    running = Running(service)
    running.server.start()
    try:
        status, body, _ = http_get(running.url + "/healthz")
        assert status == 503 and "no successful run yet" in body
        running.start_loop()  # returns after the first cycle: every task has run once
        assert http_get(running.url + "/healthz")[:2] == (200, "ok\n")
        status, body, ctype = http_get(running.url + "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        assert http_get(running.url + "/nope")[0] == 404
    finally:
        running.__exit__()


def test_landing_page_labels_replay_and_escapes_data(tmp_path):
    service = make_service(tmp_path)
    service.snapshot = dataclasses.replace(service.snapshot, data_description="<script>alert(1)</script>")
    running = Running(service)
    running.server.start()
    try:
        status, body, _ = http_get(running.url + "/")
        assert status == 200
        assert "REPLAY" in body and "not live market data" in body
        assert "<script>" not in body and "&lt;script&gt;" in body
        assert "/metrics" in body and "/healthz" in body
    finally:
        running.server.stop()


@pytest.mark.parametrize("bad", ["9877", "host:", "127.0.0.1:99999", "127.0.0.1:abc"])
def test_bad_listen_address_is_a_one_line_error(bad):
    with pytest.raises(InputError, match="HOST:PORT"):
        parse_listen(bad)


def test_listen_parses_ipv4_and_ipv6():
    assert parse_listen("0.0.0.0:9877") == ("0.0.0.0", 9877)
    assert parse_listen("[::1]:9000") == ("::1", 9000)


def test_healthz_reports_degraded_naming_the_sources_when_session_data_stops_and_ok_when_it_is_back(tmp_path):
    """A data outage in the session is not hidden behind "ok": /healthz stays 200 (the process is fine, the compose
    check passes) but says degraded, one line per source, and the landing page says so too."""
    provider = FaultyProvider()
    service = make_service(tmp_path, provider)  # 2026-11-24 10:20 ET: in the session, past its opening minutes
    with Running(service) as running:
        assert http_get(running.url + "/healthz")[:2] == (200, "ok\n")
        provider.mode = "raise"
        running.until(service.data_health, within=2 * service.config.market.stale_after_seconds + 600)
        status, body, _ = http_get(running.url + "/healthz")
        assert status == 200 and body.startswith("degraded\n"), body
        assert "^NDX (NDX): nothing new for" in body and "last fetch down" in body, body
        page = http_get(running.url + "/")[1]
        assert "Health: degraded, market data missing: " in page and "; ^NDX (NDX): nothing new for" in page, page
        provider.mode = None
        running.until(lambda: not service.data_health(), within=service.intervals["market"] * 3)
        assert http_get(running.url + "/healthz")[:2] == (200, "ok\n")


def test_after_the_close_the_last_close_is_not_an_outage(tmp_path):
    provider = FaultyProvider()
    service = make_service(tmp_path, provider, start=datetime.fromisoformat("2026-11-24T21:30:00+00:00"))
    with Running(service) as running:
        provider.mode = "raise"
        running.step(60)  # an hour of failed fetches after the close
        assert service.snapshot.calendar is not None and service.snapshot.calendar.session != "open"
        assert service.data_health() == []
        assert http_get(running.url + "/healthz")[:2] == (200, "ok\n")
