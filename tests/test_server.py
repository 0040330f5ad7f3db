"""HTTP endpoints: landing page (escaped, labelled), /metrics, /healthz before and after the first cycle."""

from __future__ import annotations

import dataclasses

import pytest

from exporter_support import Running, http_get, make_service
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
