"""HTTP endpoints: landing page (escaped, labelled), /metrics, /healthz before and after the first cycle."""

from __future__ import annotations

import dataclasses
import gzip
import socket
import threading
import time
from datetime import datetime

import pytest

from exporter_support import FaultyProvider, Running, http_get, make_service
from realstack import wait_until
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


# ---- /metrics as bytes, gzip, and a server that holds its ground ---------------------------------------------------
def raw_request(address, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send `data` as it is and read the whole answer (the server closes each connection after its response)."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


@pytest.fixture
def running(tmp_path):
    with Running(make_service(tmp_path)) as running:
        yield running


def test_metrics_gzipped_when_the_scraper_accepts_it_and_equal_to_the_plain_page(running):
    address = running.server.address
    status, headers, plain = split_response(raw_request(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == 200 and "content-encoding" not in headers and int(headers["content-length"]) == len(plain)
    status, headers, packed = split_response(raw_request(
        address, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: deflate, gzip\r\n\r\n"))
    assert status == 200 and headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(packed) == plain  # the clock does not move between the two: the same page
    assert len(packed) < len(plain) / 4
    assert "spreadwatch_price{" in plain.decode()


def test_the_page_is_rendered_when_the_loop_publishes_not_at_the_scrape(running):
    collector = running.exposition.collector
    renders = []
    families = collector.families
    collector.families = lambda s, now: renders.append(s) or families(s, now)  # type: ignore[method-assign]
    running.step()  # a new snapshot: the server renders it in the background
    wait_until(lambda: renders and renders[-1] is running.service.snapshot, 10, "the published snapshot rendered")
    count = len(renders)
    for _ in range(3):
        http_get(running.url + "/metrics")
    assert len(renders) == count


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "BREW"])
def test_only_get_and_head_anything_else_is_405_with_allow(idle_server, method):
    raw = raw_request(idle_server.address,
                      f"{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi".encode())
    status, headers, _ = split_response(raw)
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_head_gives_the_headers_of_get_without_a_body(idle_server):
    status, headers, body = split_response(raw_request(idle_server.address, b"HEAD /metrics HTTP/1.0\r\n\r\n"))
    assert status == 200 and body == b"" and int(headers["content-length"]) > 500


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /" + b"a" * 20000, 414),  # never ends its line
    (b"GET /metrics HTTP/1.1\r\n" + b"X-Filler: " + b"b" * 17000 + b"\r\n\r\n", 431),
    (b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431),
    (b"GET /metrics\r\n\r\n", 400),
    (b"GET  /metrics HTTP/1.1\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
    (b"GET /metrics HTTX/1.1\r\n\r\n", 400),
    (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # a TLS hello on the plain port
])
def test_malformed_or_oversized_requests_get_one_clear_status(idle_server, request_bytes, status):
    assert split_response(raw_request(idle_server.address, request_bytes))[0] == status
    assert split_response(raw_request(idle_server.address, b"GET /metrics HTTP/1.1\r\n\r\n"))[0] == 200  # carries on


def serving(service, **bounds):
    """The real server on a free loopback port for `service`, its loop not started (the snapshot before any cycle)."""
    from spreadwatch.edges.collector import Exposition, SnapshotCollector
    from spreadwatch.edges.server import ExporterServer

    server = ExporterServer(service, Exposition(SnapshotCollector(lambda: service.snapshot, service.clock.now)),
                            ("127.0.0.1", 0), **bounds)
    server.start()
    return server


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory):
    server = serving(make_service(tmp_path_factory.mktemp("idle")))
    yield server
    server.stop()


@pytest.fixture
def quick_server(tmp_path):
    """A server whose clients get 0.3 s to send their request (the production bound is a few seconds)."""
    server = serving(make_service(tmp_path), request_seconds=0.3, write_seconds=0.3)
    yield server
    server.stop()


def test_an_idle_or_slow_client_is_dropped_when_its_time_to_send_the_request_is_up(quick_server):
    idle = socket.create_connection(quick_server.address, timeout=10)
    slow = socket.create_connection(quick_server.address, timeout=10)
    with idle, slow:
        for _ in range(3):  # a byte at a time, never finishing the request: no reset of the clock
            slow.sendall(b"G")
            time.sleep(0.05)
        assert idle.recv(1) == b"" and slow.recv(1) == b""  # closed by the server, well before the 10 s safety


def test_workers_do_not_grow_with_connections(quick_server):
    before = threading.active_count()
    held = [socket.create_connection(quick_server.address, timeout=10) for _ in range(50)]
    try:
        status, body = split_response(raw_request(quick_server.address, b"GET /healthz HTTP/1.1\r\n\r\n"))[::2]
        assert status == 503 and body.startswith(b"unhealthy")  # the loop never ran: answered all the same
        assert threading.active_count() <= before + 4  # the fixed pool, not a thread per connection
    finally:
        for sock in held:
            sock.close()


def test_past_the_connection_bound_the_oldest_waiting_client_makes_room(tmp_path, monkeypatch):
    from spreadwatch.edges import server as server_module

    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 20)
    server = serving(make_service(tmp_path))
    held = []
    try:
        assert server.listener.limit == 20
        held = [socket.create_connection(server.address, timeout=10) for _ in range(30)]
        assert split_response(raw_request(server.address, b"GET /metrics HTTP/1.1\r\n\r\n"))[0] == 200
        assert held[0].recv(1) == b""  # the oldest idle one was dropped for the newer ones
        assert server.listener.open_connections <= 20
    finally:
        for sock in held:
            sock.close()
        server.stop()


FLOOD = 2000


@pytest.fixture
def file_limit_for_flood():
    """Room for FLOOD client sockets and the server's FLOOD accepted ones in this one process."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * FLOOD + 256
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the flood needs {needed} open files; this machine's hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_scrape_answers_within_a_second_with_2000_idle_and_slow_connections_open(tmp_path, file_limit_for_flood):
    """Half the flood connects and sends nothing, half sends a partial request head; every one stays open while
    scrapes come and go (the clients' time to send is longer than the test)."""
    service = make_service(tmp_path)
    server = serving(service, request_seconds=60.0)
    held: list[socket.socket] = []
    try:
        for i in range(FLOOD):
            sock = socket.create_connection(server.address, timeout=10)
            if i % 2:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: flood\r\n")  # never finishes its head
            held.append(sock)
        wait_until(lambda: server.listener.open_connections >= FLOOD, 30, "the whole flood accepted")
        latencies = []
        for _ in range(5):
            started = time.perf_counter()
            status = split_response(raw_request(server.address, b"GET /metrics HTTP/1.1\r\n\r\n", timeout=10))[0]
            latencies.append(time.perf_counter() - started)
            assert status == 200
        assert server.listener.open_connections >= FLOOD  # the flood is still there: it was not simply dropped
        assert max(latencies) < 1.0, latencies
    finally:
        for sock in held:
            sock.close()
        server.stop()
