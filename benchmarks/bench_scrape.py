"""Scrape time of /metrics over HTTP: spreadwatch's server vs static bytes and vs a bare prometheus_client registry.

Scenarios: 20 tickers x 20 opportunities with 10 open positions, and 3 tickers x 20 opportunities with 1,000 open
positions (snapshots built with the helpers of tests/test_collector.py). Each scrape is what Prometheus does: a new
loopback connection, `GET /metrics`, the whole body read; once as plain text and once with `Accept-Encoding: gzip`
(what Prometheus sends). The exporter's clock moves between scrapes, so every scrape renders the ages afresh.

Baselines, timed in the same run, interleaved trial by trial (the order rotated), medians reported:
- static bytes: the same server code (request parsing, the worker pool, the non-blocking writes) answering with
  fixed bytes of the same size (our own page, and its gzip, captured once). It is the floor for any server that
  answers this page over this HTTP path, so the ratio is the whole cost of our page beyond moving its bytes.
  Target: within 3x.
- a bare prometheus_client registry holding the same series (each family re-created as a labelled Gauge or
  Counter, values set, from our own page) served by prometheus_client's own `start_http_server`: what a competent
  engineer writes instead of a custom collector (set gauges in the loop, let the library serve them). It renders
  on every scrape, and gzips when asked, as that library does. Target: at most 0.2x.

`--flood N` then holds N idle or slow connections (half send nothing, half a partial request head) open to our
server and times scrapes with them open against scrapes without (target: under 1 s).

Usage: python benchmarks/bench_scrape.py [--trials 31] [--flood 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import socket
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import start_http_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from spreadwatch.edges.collector import Exposition, SnapshotCollector  # noqa: E402
from spreadwatch.edges.server import ExporterServer  # noqa: E402
from test_collector import NOW, context, snapshot  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import bare_registry  # noqa: E402  (the same series in a bare prometheus_client registry)


def scenario(n_tickers: int, n_positions: int):  # noqa: ANN201 - a Snapshot
    tickers = tuple(f"T{i:02d}" for i in range(n_tickers))
    snap = snapshot(tickers=tickers, n_opps=20, n_positions=n_positions)
    contexts = {}
    for t in tickers:  # each ticker with its own index and vol index, as a real watch list has
        ctx = context(t)
        sources = {f"^{t}": dataclasses.replace(ctx.sources["^NDX"], symbol=f"^{t}"), "^VIX": ctx.sources["^VIX"]}
        contexts[t] = dataclasses.replace(ctx, sources=sources)
    return dataclasses.replace(snap, contexts=contexts)


class StaticPage:
    """The exposition's interface, answering with fixed bytes."""

    def __init__(self, plain: bytes, packed: bytes) -> None:
        self.plain, self.packed = plain, packed

    def prepare(self, snapshot: object) -> None:
        pass

    def pieces(self, *, gzipped: bool = False) -> tuple[bytes, ...]:
        return (self.packed if gzipped else self.plain),


def scrape(port: int, gzipped: bool) -> tuple[float, int]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip" if gzipped else "identity",
                                             "Connection": "close"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200, response.status
    return time.perf_counter() - started, len(body)


def servers(snap):  # noqa: ANN201 - ports and the things to stop
    base = time.monotonic()
    collector = SnapshotCollector(lambda: snap, lambda: NOW + timedelta(seconds=(time.monotonic() - base) % 100))
    exposition = Exposition(collector)
    service = SimpleNamespace(listeners=[], snapshot=snap, health=lambda: (True, []), data_health=lambda: [])
    ours = ExporterServer(service, exposition, ("127.0.0.1", 0))
    ours.start()
    plain, packed = exposition.body(), exposition.body(gzipped=True)
    static = ExporterServer(service, StaticPage(plain, packed), ("127.0.0.1", 0))  # type: ignore[arg-type]
    static.start()
    registry = bare_registry(plain.decode())
    bare_server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    ports = {"spreadwatch": ours.address[1], "static bytes": static.address[1],
             "bare registry": bare_server.server_address[1]}
    return ports, (ours, static, bare_server), (len(plain), len(packed), series(plain))


def series(page: bytes) -> int:
    return sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))


def measure(ports: dict[str, int], gzipped: bool, trials: int) -> dict[str, float]:
    names = list(ports)
    for name in names:  # warm up
        for _ in range(3):
            scrape(ports[name], gzipped)
    times: dict[str, list[float]] = {name: [] for name in names}
    for trial in range(trials):
        order = names[trial % len(names):] + names[:trial % len(names)]
        for name in order:
            times[name].append(scrape(ports[name], gzipped)[0])
    return {name: statistics.median(values) for name, values in times.items()}


def verdict(ratio: float, ok: bool) -> str:
    return f"{ratio:.3f}x {'met' if ok else 'MISSED'}"


def run_scenario(title: str, snap, trials: int) -> None:  # noqa: ANN001
    ports, running, (size, packed, count) = servers(snap)
    try:
        print(f"\n{title}: {count} series, {size / 1000:.0f} kB plain, {packed / 1000:.0f} kB gzipped")
        for gzipped in (False, True):
            m = measure(ports, gzipped, trials)
            ours, static, bare = m["spreadwatch"], m["static bytes"], m["bare registry"]
            print(f"  {'gzip ' if gzipped else 'plain'}: spreadwatch {ours * 1000:7.2f} ms | static bytes "
                  f"{static * 1000:7.2f} ms | bare registry {bare * 1000:7.2f} ms | vs static "
                  f"{verdict(ours / static, ours <= 3 * static)} (target <= 3x) | vs bare "
                  f"{verdict(ours / bare, ours <= 0.2 * bare)} (target <= 0.2x)")
    finally:
        ours_server, static_server, bare_server = running
        ours_server.stop()
        static_server.stop()
        bare_server.shutdown()


def flood(snap, n: int, trials: int) -> None:  # noqa: ANN001
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * n + 256
    if hard != resource.RLIM_INFINITY and hard < needed:
        print(f"\nflood: skipped, {needed} open files needed and the hard limit is {hard}")
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    collector = SnapshotCollector(lambda: snap, lambda: NOW)
    service = SimpleNamespace(listeners=[], snapshot=snap, health=lambda: (True, []), data_health=lambda: [])
    server = ExporterServer(service, Exposition(collector), ("127.0.0.1", 0), request_seconds=600)
    server.start()
    port = server.address[1]
    held: list[socket.socket] = []
    try:
        for _ in range(3):
            scrape(port, True)
        quiet = [scrape(port, True)[0] for _ in range(trials)]
        for i in range(n):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 2:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: flood\r\n")
            held.append(sock)
        while server.listener.open_connections < n:
            time.sleep(0.01)
        flooded = [scrape(port, True)[0] for _ in range(trials)]
        print(f"\nflood: {server.listener.open_connections} connections open (half idle, half a partial head): "
              f"scrape median {statistics.median(flooded) * 1000:.2f} ms, max {max(flooded) * 1000:.2f} ms; "
              f"without them median {statistics.median(quiet) * 1000:.2f} ms (target: under 1 s: "
              f"{'met' if max(flooded) < 1 else 'MISSED'})")
    finally:
        for sock in held:
            sock.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=31)
    parser.add_argument("--flood", type=int, default=2000, help="idle connections for the flood (0: none)")
    args = parser.parse_args()
    run_scenario("20 tickers x 20 opportunities, 10 positions", scenario(20, 10), args.trials)
    big = scenario(3, 1000)
    run_scenario("3 tickers x 20 opportunities, 1,000 positions", big, args.trials)
    if args.flood:
        flood(big, args.flood, args.trials)


if __name__ == "__main__":
    main()
