"""The HTTP endpoints: `/` (landing page), `/metrics`, `/healthz`.

Handlers only read the service's latest snapshot (through the collector) and its health; no market data, no
database. Every value shown on the landing page is HTML-escaped: data is never rendered as a template.
"""

from __future__ import annotations

import html
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

from spreadwatch.domain.display import local_time, zone_abbreviation
from spreadwatch.domain.instants import iso_utc

log = logging.getLogger(__name__)

CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`)."""
    from spreadwatch.errors import InputError

    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:9877")
    return host.strip("[]") or "127.0.0.1", int(port)


class ExporterServer:
    def __init__(self, service: Any, registry: Any, listen: tuple[str, int]) -> None:
        self.service = service
        self.registry = registry
        handler = _make_handler(self)
        try:
            self.httpd = ThreadingHTTPServer(listen, handler)
        except OSError as exc:
            from spreadwatch.errors import InputError

            raise InputError(f"cannot listen on {listen[0]}:{listen[1]}: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def landing_page(self) -> str:
        snap = self.service.snapshot
        e = html.escape
        mode = snap.data_mode.upper()
        banner = (f'<p style="background:#fde68a;padding:8px"><b>REPLAY</b>: {e(snap.data_description)} '
                  f"&mdash; not live market data.</p>" if snap.data_mode == "replay"
                  else f"<p>Source: <b>LIVE</b> ({e(snap.data_description)})</p>")
        ok, reasons = self.service.health()
        rows = []
        for ticker, ctx in sorted(snap.contexts.items()):
            price = ctx.unknown("price") if ctx.price is None else f"{ctx.price:,.2f}"
            vix = ctx.unknown("vix") if ctx.vix is None else f"{ctx.vix:.2f}"
            rows.append(f"<tr><td>{e(ticker)}</td><td>{e(price)}</td><td>{e(vix)}</td>"
                        f"<td>{e(ctx.regime or ctx.unknown('vix'))}</td></tr>")
        zone = ZoneInfo(snap.config.display_timezone)
        clock = (f"{e(local_time(snap.time, zone, '%Y-%m-%d %H:%M:%S'))} ({e(iso_utc(snap.time))})" if snap.time
                 else "starting")
        stale = self.service.data_health() if ok else []
        health = ("OK" if not stale else "degraded, market data missing: " + "; ".join(e(r) for r in stale)) if ok \
            else "; ".join(e(r) for r in reasons)
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>spreadwatch</title></head><body>"
            "<h1>spreadwatch exporter</h1>"
            "<p>Alert-only monitor for index credit spreads. It never places a trade.</p>"
            f"{banner}<p>Clock ({e(mode.lower())}): {clock}. Health: {health}</p>"
            "<table border='1' cellpadding='4'><tr><th>ticker</th><th>price</th><th>VIX</th><th>regime</th></tr>"
            + "".join(rows)
            + "</table>" + self._setups_section(snap) + "<ul><li><a href='/metrics'>/metrics</a></li><li><a href='/healthz'>/healthz</a></li></ul>"
            f"<p>spreadwatch {e(snap.version)}</p></body></html>"
        )


    @staticmethod
    def _setups_section(snap: Any) -> str:
        """The setups an opportunity notification lists now (per ticker and entry window), or why there are none."""
        e = html.escape
        if snap.window_setups:
            items = "".join(f"<li>{e(w.ticker)} #{w.rank}: {e(w.line)}</li>" for w in snap.window_setups)
            return f"<h2>In-window setups</h2><ol style='list-style:none;padding-left:0'>{items}</ol>"
        if not snap.scans:
            why = "no scan yet"
        elif snap.calendar is not None and not snap.calendar.entry_window_open and snap.time is not None:
            zone = zone_abbreviation(snap.time.astimezone(ZoneInfo(snap.config.display_timezone)))
            why = f"the entry hours are closed (they open at {snap.config.hours.entry_start:%H:%M} {zone})"
        else:
            why = "no setup passes the filters in its entry window now"
        return f"<h2>In-window setups</h2><p>None: {e(why)}.</p>"


def _make_handler(server: ExporterServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "spreadwatch"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the stdlib
            log.debug("http: " + format, *args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    from spreadwatch.edges.collector import render

                    self._send(200, render(server.registry), CONTENT_TYPE_METRICS)
                elif path in ("/healthz", "/health"):
                    ok, reasons = server.service.health()
                    stale = server.service.data_health() if ok else []
                    body = (("degraded\n" + "".join(f"{r}\n" for r in stale) if stale else "ok\n") if ok
                            else "unhealthy\n" + "".join(f"{r}\n" for r in reasons))
                    self._send(200 if ok else 503, body.encode(), "text/plain; charset=utf-8")
                elif path == "/":
                    self._send(200, server.landing_page().encode(), "text/html; charset=utf-8")
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")
            except Exception:
                log.exception("http handler failed for %s", path)
                self._send(500, b"internal error\n", "text/plain; charset=utf-8")

        do_HEAD = do_GET

    return Handler
