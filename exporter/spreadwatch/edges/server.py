"""The HTTP endpoints: `/` (landing page), `/metrics`, `/healthz`.

Handlers only read the service's latest snapshot (through the exposition) and its health; no market data, no
database. Every value shown on the landing page is HTML-escaped: data is never rendered as a template.

The server holds its ground against idle, slow and hostile clients: one I/O thread reads every request head and
writes every response without blocking (a `selectors` loop), so a connection that sends nothing costs a file
descriptor and nothing else; a client has `REQUEST_SECONDS` from connecting to send its request head and
`WRITE_SECONDS` to take the response, or it is dropped. A complete request goes to a small, fixed pool of worker
threads (never a thread per connection). Only GET and HEAD (anything else 405, with Allow); the request line and
the head are bounded (414, 431). Open connections are bounded below the process's file limit: past it, the oldest
connection still sending its request is dropped for the new one, so a flood cannot shut a scraper out. Each
response closes its connection.

The /metrics page of a snapshot is rendered once, in the background as the loop publishes it (`Exposition`), and
served as bytes, gzipped when the scraper accepts gzip.
"""

from __future__ import annotations

import contextlib
import html
import logging
import queue
import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from spreadwatch.domain.display import local_time, zone_abbreviation
from spreadwatch.domain.instants import iso_utc

if TYPE_CHECKING:
    from spreadwatch.edges.collector import Exposition

log = logging.getLogger(__name__)

CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

WORKERS = 4  # threads answering complete requests; answers are cached bytes, so a few are plenty
REQUEST_SECONDS = 5.0  # from connecting to the end of the request head (a slow or idle client is dropped)
WRITE_SECONDS = 10.0  # to take the whole response
MAX_REQUEST_LINE = 8192  # bytes; longer: 414
MAX_HEAD = 16384  # bytes of request line and headers; more: 431
MAX_HEADERS = 100  # header lines; more: 431
MAX_CONNECTIONS = 4096  # open at once, further bounded by the file limit (FD_RESERVE left for the process)
FD_RESERVE = 64
ALLOWED_METHODS = ("GET", "HEAD")


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`)."""
    from spreadwatch.errors import InputError

    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:9877")
    return host.strip("[]") or "127.0.0.1", int(port)


class RequestError(Exception):
    """A request the server refuses, with the status that says why."""

    def __init__(self, status: HTTPStatus, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.headers = headers


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased; a repeated header's values joined by ", "

    def accepts_gzip(self) -> bool:
        for part in self.headers.get("accept-encoding", "").split(","):
            coding, _, params = part.strip().partition(";")
            if coding.strip().lower() == "gzip":
                return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
        return False


_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def parse_request(head: bytes) -> Request:
    """A request head (request line and headers, without the blank line that ends it), or a RequestError."""
    lines = [line.rstrip(b"\r") for line in head.split(b"\n")]
    if len(lines[0]) > MAX_REQUEST_LINE:
        raise RequestError(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
    if len(head) > MAX_HEAD or len(lines) - 1 > MAX_HEADERS:
        raise RequestError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not set(parts[0]) <= _TOKEN or not parts[1]:
        raise RequestError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = (p.decode("latin-1") for p in parts)
    if not version.startswith("HTTP/") or len(version) != 8 or version[5] not in "12" or version[6] != ".":
        raise RequestError(HTTPStatus.BAD_REQUEST, "malformed HTTP version")
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        raise RequestError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/1.0 and HTTP/1.1 only")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or not set(name) <= _TOKEN:
            raise RequestError(HTTPStatus.BAD_REQUEST, "malformed header line")
        key, text = name.decode("latin-1").lower(), value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if method not in ALLOWED_METHODS:
        raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed",
                           (("Allow", ", ".join(ALLOWED_METHODS)),))
    return Request(method, target.split("?", 1)[0], headers)


Pieces = tuple[bytes, ...]  # a response as the buffers it is sent from, in order


def response(status: HTTPStatus, body: bytes | Pieces, content_type: str, *, head_only: bool = False,
             headers: tuple[tuple[str, str], ...] = ()) -> Pieces:
    """A whole HTTP/1.1 response that closes its connection (HEAD: the headers of the GET, no body)."""
    pieces = (body,) if isinstance(body, bytes) else body
    lines = [f"HTTP/1.1 {status.value} {status.phrase}", "Server: spreadwatch",
             f"Date: {formatdate(usegmt=True)}", f"Content-Type: {content_type}",
             f"Content-Length: {sum(len(p) for p in pieces)}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers)]
    start = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return (start,) if head_only else (start, *(p for p in pieces if p))


def _error_response(exc: RequestError) -> Pieces:
    return response(exc.status, f"{exc}\n".encode(), TEXT, headers=exc.headers)


def connection_limit() -> int:
    """Open connections at most: MAX_CONNECTIONS, and FD_RESERVE below the process's file limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return MAX_CONNECTIONS
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft - FD_RESERVE))


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    deadline: float  # monotonic: the end of its time to send the request, then to take the response
    received: bytearray = field(default_factory=bytearray)
    out: list[memoryview] | None = None  # what is left to send of the response, once a worker has made it


class _Listener:
    """The non-blocking I/O: accepting, reading request heads, writing responses, dropping late clients."""

    def __init__(self, address: tuple[str, int], answer: Any, workers: int, request_seconds: float,
                 write_seconds: float) -> None:
        self.sock = _bind(address)
        self.answer = answer  # head bytes -> response bytes (run on a worker)
        self.request_seconds = request_seconds
        self.write_seconds = write_seconds
        self.limit = connection_limit()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http-worker")
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._answered: queue.SimpleQueue[tuple[_Connection, Pieces]] = queue.SimpleQueue()
        # Insertion-ordered, so the first is the one whose deadline comes first (each phase has one duration).
        self.reading: dict[_Connection, None] = {}
        self.writing: dict[_Connection, None] = {}
        self.busy = 0  # with a worker
        self.stopping = False

    @property
    def open_connections(self) -> int:
        return len(self.reading) + len(self.writing) + self.busy

    def serve(self) -> None:
        self.selector.register(self.sock, selectors.EVENT_READ, "accept")
        self.selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self.stopping:
                for key, _ in self.selector.select(self._timeout()):
                    try:
                        self._ready(key)
                    except Exception:  # one connection's trouble never stops the server
                        log.exception("http: connection failed")
                        if isinstance(key.data, _Connection):
                            self._close(key.data)
                self._expire()
        finally:
            self.close()

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # already awake (the pipe is full), or closing
            self._wake_w.send(b"x")

    def _timeout(self) -> float:
        firsts = [next(iter(d)).deadline for d in (self.reading, self.writing) if d]
        return max(0.0, min([*firsts, time.monotonic() + 1.0]) - time.monotonic())

    def _ready(self, key: selectors.SelectorKey) -> None:
        if key.data == "accept":
            self._accept()
        elif key.data == "wake":
            while True:
                try:
                    if not self._wake_r.recv(4096):
                        break
                except BlockingIOError:
                    break
            self._start_writes()
        elif key.data.out is None:
            self._read(key.data)
        else:
            self._write(key.data)

    def _accept(self) -> None:
        for _ in range(256):  # a flood must not starve the rest of the loop
            try:
                sock, _ = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # out of file descriptors: make room, or wait for it
                if not self._evict():
                    log.warning("http: cannot accept a connection (%s)", exc.strerror or exc)
                    time.sleep(0.05)
                    return
                continue
            if self.open_connections >= self.limit and not self._evict():
                sock.close()
                continue
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # whole responses are written at once: nothing to gain from Nagle
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock, time.monotonic() + self.request_seconds)
            self.reading[conn] = None
            self.selector.register(sock, selectors.EVENT_READ, conn)

    def _evict(self) -> bool:
        """Drop the connection that has been sending its request longest (the one next to time out)."""
        if not self.reading:
            return False
        self._close(next(iter(self.reading)))
        return True

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        conn.received += data
        end = _head_end(conn.received)
        if end is None and len(conn.received) <= MAX_HEAD:
            return
        self.selector.unregister(conn.sock)
        del self.reading[conn]
        if end is None:  # too long a head: say which part, without reading further
            first_line_ends = conn.received.find(b"\n")
            too_long = first_line_ends < 0 or first_line_ends > MAX_REQUEST_LINE
            exc = RequestError(HTTPStatus.REQUEST_URI_TOO_LONG if too_long
                               else HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                               "request line too long" if too_long else "request head too large")
            self._send(conn, _error_response(exc))
            return
        self.busy += 1
        self.pool.submit(self._work, conn, bytes(conn.received[:end]))

    def _work(self, conn: _Connection, head: bytes) -> None:
        try:
            out = self.answer(head)
        except Exception:
            log.exception("http: handler failed")
            out = response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", TEXT)
        self._answered.put((conn, out))
        self.wake()

    def _start_writes(self) -> None:
        while True:
            try:
                conn, out = self._answered.get_nowait()
            except queue.Empty:
                return
            self.busy -= 1
            self._send(conn, out)

    def _send(self, conn: _Connection, out: Pieces) -> None:
        conn.out = [memoryview(piece) for piece in out if piece]
        conn.deadline = time.monotonic() + self.write_seconds
        self.writing[conn] = None
        self._write(conn)
        if conn in self.writing:
            self.selector.register(conn.sock, selectors.EVENT_WRITE, conn)

    def _write(self, conn: _Connection) -> None:
        """Send what the socket takes of the rest of the response, all its pieces in one call (a gather write:
        no piece waits for the one before it to be acknowledged); close the connection once everything is sent."""
        out = conn.out
        assert out is not None
        while out:
            try:
                sent = conn.sock.sendmsg(out[:64]) if _GATHER else conn.sock.send(out[0])
            except BlockingIOError:
                return
            except OSError:  # the client went away
                self._close(conn)
                return
            while out and sent >= len(out[0]):
                sent -= len(out.pop(0))
            if out and sent:
                out[0] = out[0][sent:]
            if out and not sent:
                return  # the socket's buffer is full: the rest when it is writable again
        self._close(conn)

    def _expire(self) -> None:
        now = time.monotonic()
        for pending in (self.reading, self.writing):
            while pending:
                conn = next(iter(pending))
                if conn.deadline > now:
                    break
                self._close(conn)

    def _close(self, conn: _Connection) -> None:
        self.reading.pop(conn, None)
        self.writing.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):  # not registered (with a worker, or never)
            self.selector.unregister(conn.sock)
        conn.sock.close()

    def close(self) -> None:
        for conn in [*self.reading, *self.writing]:
            self._close(conn)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.selector.close()
        for sock in (self.sock, self._wake_r, self._wake_w):
            sock.close()


_GATHER = hasattr(socket.socket, "sendmsg")


def _head_end(data: bytearray) -> int | None:
    """Where the request head ends (before its blank line), or None while it has not ended."""
    for mark in (b"\r\n\r\n", b"\n\n"):
        at = data.find(mark)
        if at >= 0:
            return at
    return None


def _bind(address: tuple[str, int]) -> socket.socket:
    from spreadwatch.errors import InputError

    host, port = address
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise InputError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


class ExporterServer:
    """The endpoints on `listen`, reading `service` (its snapshot, its health) and `exposition` (/metrics)."""

    def __init__(self, service: Any, exposition: Exposition, listen: tuple[str, int], *, workers: int = WORKERS,
                 request_seconds: float = REQUEST_SECONDS, write_seconds: float = WRITE_SECONDS) -> None:
        self.service = service
        self.exposition = exposition
        self.listener = _Listener(listen, self.answer, workers, request_seconds, write_seconds)
        self.thread = threading.Thread(target=self.listener.serve, name="http", daemon=True)
        self._render_wake = threading.Event()
        self._published: Any = None
        self._renderer = threading.Thread(target=self._render_published, name="render", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.listener.sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.service.listeners.append(self.snapshot_published)
        self.snapshot_published(self.service.snapshot)
        self._renderer.start()
        self.thread.start()

    def stop(self) -> None:
        if self.snapshot_published in self.service.listeners:
            self.service.listeners.remove(self.snapshot_published)
        self.listener.stopping = True
        self.listener.wake()
        self._render_wake.set()
        for thread in (self.thread, self._renderer):
            if thread.is_alive():
                thread.join(10)
        if not self.thread.ident:  # never started: the socket is still ours to close
            self.listener.close()

    def snapshot_published(self, snapshot: Any) -> None:
        """The loop published `snapshot`: render its page in the background (the newest one, if several came
        while a render ran), so the loop never waits for it and a scrape finds it ready."""
        self._published = snapshot
        self._render_wake.set()

    def _render_published(self) -> None:
        while True:
            self._render_wake.wait()
            self._render_wake.clear()
            if self.listener.stopping:
                return
            snapshot, self._published = self._published, None
            if snapshot is not None:
                try:
                    self.exposition.prepare(snapshot)
                except Exception:  # the scrape renders it again, and says so if it fails again
                    log.exception("rendering the /metrics page failed")

    # ---- requests (on a worker thread) --------------------------------------------------------------------
    def answer(self, head: bytes) -> Pieces:
        try:
            request = parse_request(head)
        except RequestError as exc:
            return _error_response(exc)
        head_only = request.method == "HEAD"
        if request.path == "/metrics":
            gzipped = request.accepts_gzip()
            extra = (("Vary", "Accept-Encoding"), *((("Content-Encoding", "gzip"),) if gzipped else ()))
            return response(HTTPStatus.OK, self.exposition.pieces(gzipped=gzipped), CONTENT_TYPE_METRICS,
                            head_only=head_only, headers=extra)
        if request.path in ("/healthz", "/health"):
            ok, reasons = self.service.health()
            stale = self.service.data_health() if ok else []
            body = (("degraded\n" + "".join(f"{r}\n" for r in stale) if stale else "ok\n") if ok
                    else "unhealthy\n" + "".join(f"{r}\n" for r in reasons))
            return response(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body.encode(), TEXT,
                            head_only=head_only)
        if request.path == "/":
            return response(HTTPStatus.OK, self.landing_page().encode(), "text/html; charset=utf-8",
                            head_only=head_only)
        return response(HTTPStatus.NOT_FOUND, b"not found\n", TEXT, head_only=head_only)

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
            + "</table>" + self._setups_section(snap)
            + "<ul><li><a href='/metrics'>/metrics</a></li><li><a href='/healthz'>/healthz</a></li></ul>"
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
