"""Real components for tests: Prometheus, Alertmanager and notification sinks on 127.0.0.1 (helpers, not tests).

Everything binds loopback on a free port, keeps its state under a directory the caller gives (pytest's
``tmp_path``), and returns an object with its URL(s), what it collected, and ``stop()`` (each is also a context
manager). Nothing here touches the network beyond 127.0.0.1.

- ``start_prometheus(config_dir, workdir, targets=..., alertmanager_urls=...)``: a real ``prometheus`` run from a
  copy of a config directory (``prometheus.yml`` + the rule files it names), with scrape targets and intervals
  rewritten for the test (1 s by default). ``query()``, ``query_range()``, ``alerts()``, ``wait_for_up()``.
- ``start_alertmanager(config, workdir, templates_dir=...)``: a real ``prometheus-alertmanager`` (Debian's binary
  name) with clustering off. ``alerts()``, ``post_alerts()``.
- ``start_smtp_sink()``: an aiosmtpd server collecting every message (parsed ``email.message.EmailMessage``).
- ``start_http_sink()``: an HTTP server recording every POSTed JSON body (stands in for Slack's webhook).
- ``slack_shown(text)``: a Slack message's text as Slack shows it (its three mrkdwn entities read back).
- ``repo_routing(workdir, smtp_smarthost, slack_url)``: the repo's Alertmanager routing delivering to the sinks.
- ``start_metrics_stub(text)``: serves a fixed ``/metrics`` exposition you can change with ``set()``, to feed a real
  Prometheus known series (e.g. to run dashboard panel queries against it).
- High availability: ``start_prometheus_replica(config_file, rules_dir, workdir, replica=..., port=...)`` runs one
  replica of a pair from its own config file (external labels, ``alert_relabel_configs`` kept);
  ``start_alertmanager_cluster(configs, workdir, ...)`` a gossip cluster of real Alertmanagers (``ClusterMember``:
  ``status()``, ``position()``, ``silences()``, ``create_silence()``); ``kill(process)`` is a SIGKILL (no shutdown:
  a lost machine).
- ``exposition_samples(text)`` / ``sample_value(text, name, labels)``: the samples of a ``/metrics`` page;
  ``MetricsWatcher(url)`` polls an exporter's ``/metrics`` and answers when a sample first appeared or went away.

Example (a dashboard test)::

    stub = start_metrics_stub('spreadwatch_vix{} 18.5\\n')
    prom = start_prometheus(ROOT / "prometheus", tmp_path, targets={"spreadwatch": [stub.address]},
                            rule_files=[])
    try:
        prom.wait_for_up("spreadwatch")
        assert prom.query("spreadwatch_vix")[0]["value"][1] == "18.5"
    finally:
        prom.stop(); stub.stop()

Prometheus's first scrape comes a few seconds after start (target discovery is batched every 5 s);
``wait_for_up`` waits for it.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

PROMETHEUS_BIN = os.environ.get("SPREADWATCH_PROMETHEUS_BIN", "prometheus")
ALERTMANAGER_BIN = os.environ.get("SPREADWATCH_ALERTMANAGER_BIN", "prometheus-alertmanager")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Call ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass (TimeoutError
    naming ``what``). Exceptions from the predicate count as "not yet" (a server still starting)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - a server that is not up yet raises; keep waiting
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


class ManagedProcess:
    """A child process with its output in ``workdir/NAME.log``; ``wait_ready(url)`` polls until it answers 200;
    ``stop()`` terminates it (then kills it) and is idempotent. Usable for any server a test starts (the exporter)."""

    def __init__(self, name: str, args: list[str], workdir: Path):
        self.name = name
        self.args = args
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir,
                                     start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if not self._log.closed:
            self._log.close()

    def wait_ready(self, url: str, timeout: float) -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            return requests.get(url, timeout=1).status_code == 200

        try:
            wait_until(ready, timeout, f"{self.name} at {url}")
        except RuntimeError as exc:
            raise RuntimeError(str(exc)) from None
        except TimeoutError:
            self.stop()
            raise TimeoutError(f"{self.name} not ready at {url} in {timeout} s:\n{self.log()[-3000:]}") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------- Prometheus


class Prometheus(ManagedProcess):
    """A running Prometheus. ``url`` is its base URL; ``config_path`` the rewritten prometheus.yml."""

    def __init__(self, args: list[str], workdir: Path, url: str, config_path: Path):
        super().__init__("prometheus", args, workdir)
        self.url = url
        self.config_path = config_path

    def _api(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """Instant query; the result list of the vector (each ``{"metric": {...}, "value": [ts, "v"]}``)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        return self._api("query", **params)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        return self._api("query_range", query=expr, start=start, end=end, step=step)["result"]

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        """Values of ``label`` (over series matching the selector ``match`` when given), as Grafana's
        ``label_values(match, label)`` variable query asks for them."""
        params: dict[str, Any] = {"match[]": match} if match else {}
        return self._api(f"label/{label}/values", **params)

    def alerts(self) -> list[dict]:
        """Active alerts (pending and firing) as Prometheus sees them."""
        return self._api("alerts")["alerts"]

    def rules(self) -> list[dict]:
        return self._api("rules")["groups"]

    def targets(self) -> list[dict]:
        return self._api("targets")["activeTargets"]

    def wait_for_up(self, job: str, timeout: float = 30) -> None:
        """Wait until every target of ``job`` has been scraped successfully at least once."""
        def up() -> bool:
            result = self.query(f'up{{job="{job}"}}')
            return bool(result) and all(r["value"][1] == "1" for r in result)

        wait_until(up, timeout, f'up{{job="{job}"}} == 1')


def start_prometheus(config_dir: Path, workdir: Path, *, targets: dict[str, list[str]] | None = None,
                     alertmanager_urls: Iterable[str] | None = None, scrape_interval: str = "1s",
                     evaluation_interval: str = "1s", rule_files: list[str] | None = None,
                     resend_delay: str = "1s", extra_args: Iterable[str] = (), timeout: float = 30) -> Prometheus:
    """Start Prometheus from a copy of ``config_dir`` (its ``prometheus.yml`` and whatever it references).

    ``targets`` maps job name to ``host:port`` targets and replaces the scrape configs (jobs not named are dropped,
    so no scrape goes to a compose host name); a job not in the file gets a plain static config.
    ``alertmanager_urls`` (``http://127.0.0.1:PORT``) replaces the alerting targets; ``None`` removes alerting.
    ``rule_files`` replaces the rule file globs (``[]``: no rules). Intervals default to 1 s for fast tests.
    ``resend_delay`` (``--rules.alert.resend-delay``, 1 m in production) is 1 s: alerts evaluated before
    Prometheus has discovered the Alertmanager (up to 5 s after start) are dropped and only re-sent after it.
    With alerting, returns once the Alertmanager is discovered.
    """
    workdir = Path(workdir)
    conf_dir = workdir / "prometheus-config"
    shutil.copytree(config_dir, conf_dir, dirs_exist_ok=True)
    config = yaml.safe_load((conf_dir / "prometheus.yml").read_text(encoding="utf-8"))
    glob = config.setdefault("global", {})
    glob["scrape_interval"] = scrape_interval
    glob["evaluation_interval"] = evaluation_interval
    glob["scrape_timeout"] = scrape_interval  # must not exceed the interval
    if targets is not None:
        by_name = {job["job_name"]: job for job in config.get("scrape_configs", [])}
        jobs = []
        for name, addresses in targets.items():
            job = dict(by_name.get(name, {"job_name": name}))
            job.pop("scrape_interval", None)
            job.pop("scrape_timeout", None)
            job["static_configs"] = [{"targets": list(addresses)}]
            jobs.append(job)
        config["scrape_configs"] = jobs
    if alertmanager_urls is None:
        config.pop("alerting", None)
    else:
        hosts = [u.split("://", 1)[-1].rstrip("/") for u in alertmanager_urls]
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": hosts}]}]}
    if rule_files is not None:
        config["rule_files"] = rule_files
    config_path = conf_dir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [PROMETHEUS_BIN, f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle", "--log.level=warn",
            f"--rules.alert.resend-delay={resend_delay}", *extra_args]
    return _launch_prometheus(args, workdir, url, config_path, timeout, discover=bool(alertmanager_urls))


def _launch_prometheus(args: list[str], workdir: Path, url: str, config_path: Path, timeout: float, *,
                       discover: bool) -> Prometheus:
    """Run Prometheus with ``args``; return once it is ready and (``discover``) has found its Alertmanagers."""
    prom = Prometheus(args, workdir, url, config_path)
    prom.wait_ready(f"{url}/-/ready", timeout)
    if discover:
        try:
            wait_until(lambda: prom._api("alertmanagers")["activeAlertmanagers"], timeout, "Alertmanager discovery")
        except TimeoutError:
            prom.stop()
            raise
    return prom


# ------------------------------------------------------------------------------------------- Alertmanager


class Alertmanager(ManagedProcess):
    def __init__(self, args: list[str], workdir: Path, url: str, config_path: Path):
        super().__init__("alertmanager", args, workdir)
        self.url = url
        self.config_path = config_path

    def alerts(self, active: bool = True, inhibited: bool = True, silenced: bool = True) -> list[dict]:
        """Alerts Alertmanager holds (API v2), each with ``status.state`` (active|suppressed) and ``inhibitedBy``."""
        params = {"active": str(active).lower(), "inhibited": str(inhibited).lower(),
                  "silenced": str(silenced).lower()}
        return requests.get(f"{self.url}/api/v2/alerts", params=params, timeout=10).json()

    def post_alerts(self, alerts: list[dict]) -> None:
        """Send alerts as Prometheus would (``[{"labels": {...}, "annotations": {...}, "startsAt": ...}]``)."""
        response = requests.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10)
        response.raise_for_status()


def _write_alertmanager_config(config: Path | dict | str, conf_dir: Path, templates_dir: Path | None) -> Path:
    """``config`` (a path, a parsed dict or YAML text) as ``conf_dir/alertmanager.yml``, with ``templates_dir``
    copied beside it as ``templates/``; returns the file's path."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(config, Path):
        text = config.read_text(encoding="utf-8")
    elif isinstance(config, dict):
        text = yaml.safe_dump(config, sort_keys=False)
    else:
        text = config
    config_path = conf_dir / "alertmanager.yml"
    config_path.write_text(text, encoding="utf-8")
    if templates_dir is not None:
        shutil.copytree(templates_dir, conf_dir / "templates", dirs_exist_ok=True)
    return config_path


def start_alertmanager(config: Path | dict | str, workdir: Path, *, templates_dir: Path | None = None,
                       extra_args: Iterable[str] = (), timeout: float = 30) -> Alertmanager:
    """Start Alertmanager with ``config`` (a path, a parsed dict or YAML text) written to ``workdir``.

    ``templates_dir`` is copied to ``workdir/templates`` so a config's ``templates: [templates/*.tmpl]`` resolves
    (Alertmanager resolves template globs relative to the config file). Clustering is off.
    """
    workdir = Path(workdir)
    config_path = _write_alertmanager_config(config, workdir / "alertmanager-config", templates_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [ALERTMANAGER_BIN, f"--config.file={config_path}", f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", f"--web.external-url={url}",
            "--log.level=warn", *extra_args]
    am = Alertmanager(args, workdir, url, config_path)
    am.wait_ready(f"{url}/-/ready", timeout)
    return am


# ------------------------------------------------------------------------------------------------- Sinks


@dataclass
class Received:
    """One notification: when it arrived (``time.time()``/``time.monotonic()``) and its parsed content."""

    wall: float
    monotonic: float
    body: Any
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Sink:
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _add(self, body: Any, path: str = "", headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self.messages.append(Received(time.time(), time.monotonic(), body, path, dict(headers or {})))

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float, what: str = "a message") -> Received:
        """The first message (arrived so far or within ``timeout``) for which ``predicate`` holds."""
        def find() -> Received | None:
            return next((m for m in self.snapshot() if predicate(m)), None)

        return wait_until(find, timeout, what, interval=0.05)

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class SmtpSink(_Sink):
    """aiosmtpd on 127.0.0.1; ``messages[i].body`` is an ``email.message.EmailMessage``."""

    def __init__(self) -> None:
        super().__init__()
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                sink._add(message, ",".join(envelope.rcpt_tos))
                return "250 OK"

        self.port = free_port()
        self.host = "127.0.0.1"
        self._controller = Controller(Handler(), hostname=self.host, port=self.port)
        self._controller.start()

    @property
    def smarthost(self) -> str:
        return f"{self.host}:{self.port}"

    @staticmethod
    def text_of(message: email.message.EmailMessage) -> str:
        """The plain-text part (or the HTML one when there is no text part)."""
        part = message.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part is not None else ""

    def stop(self) -> None:
        self._controller.stop()



def start_smtp_sink() -> SmtpSink:
    return SmtpSink()


class HttpSink(_Sink):
    """A threaded HTTP server recording POSTed bodies (JSON parsed when possible), their path (with the query) and
    headers; answers 200 "ok"."""

    def __init__(self) -> None:
        super().__init__()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", errors="replace")
                sink._add(body, self.path, dict(self.headers.items()))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()



def start_http_sink() -> HttpSink:
    return HttpSink()


def slack_shown(text: str) -> str:
    """A Slack message's text as Slack shows it: the three entities its mrkdwn needs (`&amp;`, `&lt;`, `&gt;`,
    which the notification templates write for those characters in values) read back as the characters."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class MetricsStub:
    """Serves ``GET /metrics`` with the exposition text last given to ``set()`` (thread-safe)."""

    def __init__(self, text: str = "") -> None:
        self._text = text
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                with stub._lock:
                    payload = stub._text.encode("utf-8")
                self.send_response(200 if self.path.startswith("/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.address}/metrics"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def set(self, text: str) -> None:
        with self._lock:
            self._text = text

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_metrics_stub(text: str = "") -> MetricsStub:
    return MetricsStub(text)


# ------------------------------------------------------------------------- high availability: a pair, a cluster


def kill(process: ManagedProcess) -> float:
    """SIGKILL ``process`` (no shutdown, no goodbye to its peers: what a lost machine looks like) and reap it.
    Returns ``time.monotonic()`` just after the signal was sent."""
    process.proc.kill()
    killed_at = time.monotonic()
    process.proc.wait(timeout=10)
    process.stop()  # closes the log
    return killed_at


def exposition_samples(text: str) -> list[Sample]:
    """Every sample of an exposition text (a ``/metrics`` page), parsed (a counter's samples keep their ``_total``)."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def sample_value(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of the sample named exactly ``name`` with exactly ``labels`` in an exposition text, or None."""
    return next((s.value for s in exposition_samples(text) if s.name == name and s.labels == (labels or {})), None)


def _replace_targets(config: dict, targets: dict[str, list[str]], alertmanager_urls: Iterable[str]) -> None:
    """Scrape targets per job (jobs not named are dropped) and every alertmanagers entry's targets, in place;
    everything else in the file (relabelling, external labels) stays as written."""
    by_name = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    config["scrape_configs"] = [
        {**by_name.get(name, {"job_name": name}), "static_configs": [{"targets": list(addresses)}]}
        for name, addresses in targets.items()]
    hosts = [u.split("://", 1)[-1].rstrip("/") for u in alertmanager_urls]
    for entry in config["alerting"]["alertmanagers"]:
        entry["static_configs"] = [{"targets": hosts}]


def start_prometheus_replica(config_file: Path, rules_dir: Path, workdir: Path, *, replica: str, port: int,
                             targets: dict[str, list[str]], alertmanager_urls: Iterable[str],
                             scrape_interval: str = "1s", evaluation_interval: str = "1s",
                             resend_delay: str = "1s", timeout: float = 30) -> Prometheus:
    """One replica of a Prometheus pair, run from ``config_file`` as production runs it: the external labels are
    expanded from the environment (``PROMETHEUS_REPLICA=<replica>``, ``--enable-feature=expand-external-labels``)
    and ``alert_relabel_configs`` are kept. Only addresses and intervals change: every job's static targets come
    from ``targets`` and every Alertmanager list from ``alertmanager_urls``. ``rules_dir`` is copied beside the
    config as ``rules/``. ``port`` is chosen by the caller (``free_port()``) so the replicas can scrape each other.
    Returns once the Alertmanagers are discovered."""
    workdir = Path(workdir)
    conf_dir = workdir / "prometheus-config"
    shutil.copytree(rules_dir, conf_dir / "rules", dirs_exist_ok=True)
    config = yaml.safe_load(Path(config_file).read_text(encoding="utf-8"))
    config["global"].update(scrape_interval=scrape_interval, evaluation_interval=evaluation_interval,
                            scrape_timeout=scrape_interval)
    _replace_targets(config, targets, alertmanager_urls)
    config_path = conf_dir / Path(config_file).name
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    url = f"http://127.0.0.1:{port}"
    # `env` execs the server in place: same pid, so kill() reaches Prometheus itself.
    args = ["env", f"PROMETHEUS_REPLICA={replica}", PROMETHEUS_BIN, f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle", "--log.level=warn", f"--rules.alert.resend-delay={resend_delay}",
            "--enable-feature=expand-external-labels"]
    return _launch_prometheus(args, workdir, url, config_path, timeout, discover=True)


class ClusterMember(Alertmanager):
    """An Alertmanager in a gossip cluster; ``cluster_address`` is its gossip ``host:port``."""

    def __init__(self, args: list[str], workdir: Path, url: str, config_path: Path, cluster_address: str):
        super().__init__(args, workdir, url, config_path)
        self.cluster_address = cluster_address

    def status(self) -> dict:
        """``/api/v2/status``: ``cluster`` has ``name`` (this member), ``peers`` (every member it sees, itself
        included) and ``status`` (``settling`` until gossip has settled, then ``ready``)."""
        return requests.get(f"{self.url}/api/v2/status", timeout=5).json()

    def position(self) -> int | None:
        """This member's place in the cluster (0 notifies first; member k waits k x ``--cluster.peer-timeout``)."""
        value = sample_value(requests.get(f"{self.url}/metrics", timeout=5).text, "alertmanager_peer_position")
        return None if value is None else int(value)

    def silences(self) -> list[dict]:
        return requests.get(f"{self.url}/api/v2/silences", timeout=5).json()

    def clock(self) -> float:
        """The member's wall clock (epoch seconds, from its ``Date`` header: whole seconds, so up to 1 s behind).
        Compare the times the member reports (``startsAt``, ``endsAt``) with this, not with the test's clock."""
        served = requests.get(f"{self.url}/api/v2/status", timeout=5)
        served.raise_for_status()
        return email.utils.parsedate_to_datetime(served.headers["Date"]).timestamp()

    def create_silence(self, matchers: dict[str, str], *, minutes: float = 30, comment: str = "test") -> str:
        """A silence of the alerts whose labels equal ``matchers``, from now; returns its id. "Now" is the
        Alertmanager's own clock (its ``Date`` header, a second early): under ``faketime`` the test's clock is not
        the Go binary's, and a silence that starts in the member's future would stay pending."""
        now = self.clock() - 1

        def iso(seconds: float) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"

        body = {"matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
                "startsAt": iso(now), "endsAt": iso(now + minutes * 60), "createdBy": "test", "comment": comment}
        response = requests.post(f"{self.url}/api/v2/silences", json=body, timeout=5)
        response.raise_for_status()
        return response.json()["silenceID"]


def start_alertmanager_cluster(configs: list[Path | dict | str], workdir: Path, *, templates_dir: Path | None = None,
                               peer_timeout: str = "2s", gossip_interval: str = "100ms",
                               pushpull_interval: str = "1s", settle_timeout: str = "3s",
                               probe_interval: str = "1s", timeout: float = 30) -> list[ClusterMember]:
    """One Alertmanager per config (each under ``workdir/am<i>``), gossiping on loopback, as docker-compose.yml's
    ``ha`` profile wires them: the first member is started with no ``--cluster.peer`` (the single-node
    ``alertmanager`` service, which the others join), every other member names all the others. Returns once every
    member has settled and sees the whole cluster. The timers are short for tests (production: peer timeout 15 s,
    gossip 200 ms, push-pull 1 m, probe 1 s)."""
    gossip = [f"127.0.0.1:{free_port()}" for _ in configs]
    members: list[ClusterMember] = []
    try:
        for i, config in enumerate(configs):
            member_dir = Path(workdir) / f"am{i + 1}"
            config_path = _write_alertmanager_config(config, member_dir / "alertmanager-config", templates_dir)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            peers = [f"--cluster.peer={address}" for j, address in enumerate(gossip) if i and j != i]
            args = [ALERTMANAGER_BIN, f"--config.file={config_path}",
                    f"--storage.path={member_dir / 'alertmanager-data'}", f"--web.listen-address=127.0.0.1:{port}",
                    f"--web.external-url={url}", f"--cluster.listen-address={gossip[i]}", *peers,
                    f"--cluster.peer-timeout={peer_timeout}", f"--cluster.gossip-interval={gossip_interval}",
                    f"--cluster.pushpull-interval={pushpull_interval}", f"--cluster.settle-timeout={settle_timeout}",
                    f"--cluster.probe-interval={probe_interval}", "--log.level=warn"]
            member = ClusterMember(args, member_dir, url, config_path, gossip[i])
            members.append(member)
            member.wait_ready(f"{url}/-/ready", timeout)

        def formed() -> bool:
            views = [m.status()["cluster"] for m in members]
            return all(v["status"] == "ready" and len(v["peers"]) == len(members) for v in views)

        wait_until(formed, timeout, f"a settled cluster of {len(members)}")
    except BaseException:
        for member in members:
            member.stop()
        raise
    return members
# ---------------------------------------------------------------------------------------------- routing


def repo_routing(workdir: Path, smtp_smarthost: str, slack_url: str, *, group_wait: str | None = None,
                 group_interval: str | None = None, push_url: str | None = None) -> dict:
    """The repo's alertmanager/alertmanager.yml with only the delivery addresses changed, to loopback sinks
    (through the same ``*_file`` secret settings, written under ``workdir/secrets``); routes, repeats and
    inhibitions stay the repo's. ``group_wait``/``group_interval``, when given, shorten every route's timers.
    The phone's push webhooks (ntfy) keep their path and query (topic, priority, templates) but go to ``push_url``
    (default: ``/push`` on the Slack sink's server, whose JSON bodies have no Slack ``attachments``), with their
    access token file written as ``workdir/secrets/<name>`` holding ``PUSH_TOKEN``."""
    root = Path(__file__).resolve().parents[1]
    (workdir / "secrets").mkdir(exist_ok=True)
    (workdir / "secrets" / "slack_webhook_url").write_text(slack_url + "\n", encoding="utf-8")
    (workdir / "secrets" / "smtp_password").write_text("not-used-by-the-sink\n", encoding="utf-8")
    config = yaml.safe_load((root / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    config["global"].update(smtp_smarthost=smtp_smarthost, smtp_require_tls=False,
                            slack_api_url_file=str(workdir / "secrets" / "slack_webhook_url"),
                            smtp_auth_password_file=str(workdir / "secrets" / "smtp_password"))
    origin = re.match(r"https?://[^/]+", slack_url)
    _route_push_webhooks(config, workdir / "secrets", push_url or f"{origin[0] if origin else slack_url}/push")

    def shorten(route: dict) -> None:
        if group_wait is not None:
            route["group_wait"] = group_wait
        if group_interval is not None:
            route["group_interval"] = group_interval
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    return config


PUSH_TOKEN = "tk_test_push_token"


def _route_push_webhooks(config: dict, secrets: Path, push_url: str) -> None:
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            target = re.sub(r"^https?://[^/]+", "", hook["url"])
            hook["url"] = push_url.rstrip("/") + target
            auth = hook.get("http_config", {}).get("authorization", {})
            if "credentials_file" in auth:
                token_file = secrets / Path(auth["credentials_file"]).name
                token_file.write_text(PUSH_TOKEN + "\n", encoding="utf-8")
                auth["credentials_file"] = str(token_file)


class MetricsWatcher:
    """Polls the exporter's /metrics every 0.2 s and keeps every successful poll (time, sample lines), so a test can
    ask when the exporter first showed a condition, when it stopped showing it, and which values it showed."""

    def __init__(self, url: str):
        self.url = url
        self._polls: list[tuple[float, frozenset[str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = requests.get(self.url, timeout=2)
            except requests.RequestException:  # not up yet
                response = None
            now = time.monotonic()
            if response is not None and response.status_code == 200:
                lines = frozenset(sys.intern(line) for line in response.text.splitlines()
                                  if line and not line.startswith("#"))
                with self._lock:
                    self._polls.append((now, lines))
            self._stop.wait(0.2)

    def polls(self, after: float = 0.0) -> list[tuple[float, frozenset[str]]]:
        with self._lock:
            return [p for p in self._polls if p[0] >= after]

    def when(self, pattern: str, after: float = 0.0, timeout: float = 60) -> float:
        """Monotonic time of the first poll at or after ``after`` with a sample line matching ``pattern`` (a regex;
        waits for one)."""
        regex = re.compile(pattern)
        return wait_until(lambda: next((t for t, lines in self.polls(after) if any(map(regex.search, lines))), None),
                          timeout, f"exporter sample {pattern}")

    def gone(self, pattern: str, after: float, timeout: float = 60) -> float:
        """Monotonic time of the first poll at or after ``after`` without any sample line matching ``pattern``."""
        regex = re.compile(pattern)
        return wait_until(lambda: next((t for t, lines in self.polls(after)
                                        if not any(map(regex.search, lines))), None),
                          timeout, f"exporter sample {pattern} gone")

    def values(self, pattern: str) -> set[float]:
        """Every value the exporter showed for the sample lines matching ``pattern``."""
        regex = re.compile(pattern)
        return {float(line.rsplit(" ", 1)[1]) for _, lines in self.polls() for line in lines if regex.search(line)}

    def latest(self, pattern: str) -> float | None:
        regex = re.compile(pattern)
        polls = self.polls()
        if not polls:
            return None
        return next((float(line.rsplit(" ", 1)[1]) for line in polls[-1][1] if regex.search(line)), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
