"""Exit latency on the real stack: from `spreadwatch positions update` (a P&L past the profit target) to the Slack
webhook receiving the exit notification, against a bare one-gauge prometheus_client exporter on the same stack.

The stack runs at production intervals: the repo's prometheus/prometheus.yml with its rules, scrape and evaluation
every 15 s, and the repo's alertmanager/alertmanager.yml routing unchanged (the exit route's group_wait 10 s),
delivering Slack to a loopback HTTP sink and email to a loopback SMTP sink. Only the delivery addresses change.

Ours: the real exporter (`spreadwatch run`, a separate process) on the bundled replay day at 1x, started 15
replayed minutes after the open, so the exit rule's gates hold from the first scrape (`spreadwatch_market_open == 1`,
every source fresh) and no SpreadwatchMarketDataStale (which inhibits exits) fires: at the open itself every source
still holds the previous close until the first bar arrives, and a Prometheus that starts then sees that as stale. Each trial logs a new position (`positions add`, untimed), waits until Prometheus has scraped it, then
times `positions update ID --pnl 150` (the target is 50 % of a 200 credit) to the Slack message naming the position
(SpreadwatchProfitTarget). The CLI runs at the replay clock's instant (SPREADWATCH_NOW), as a trader on that day.

The anchor (why it is fair): a one-gauge prometheus_client exporter in this process, scraped by the same Prometheus
at the same interval, with an alert of the same shape as the exit rule (a P&L gauge against a target gauge, no
`for:`, category=exit, severity=warning) in its own rule group, so it takes the very same Alertmanager route and
receiver (group per position, group_wait 10 s, Slack and email). It has nothing to notice, no process to start and
no book to read, so it is the floor the stack allows: scrape wait + evaluation wait + group_wait + delivery. Its gauge
is set at the same moment the update command starts, in every trial, so each trial measures both on the same stack
state (paired); a random 0-15 s pause before each trial spreads the moment over the scrape and evaluation phases.

Target: our median within the anchor's median + 2 s. Exits 1 when missed.
Usage: python benchmarks/bench_exit_latency.py [--trials 8]   (takes about 1.5 min per trial)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import requests
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from spreadwatch.config import bundled_path
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.edges.providers.replay import ReplayProvider

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from realstack import (  # noqa: E402
    ManagedProcess,
    free_port,
    repo_routing,
    sample_value,
    start_alertmanager,
    start_http_sink,
    start_prometheus,
    start_smtp_sink,
    wait_until,
)

TARGET_MARGIN = 2.0  # seconds over the anchor's median
SPREADWATCH = Path(sys.executable).parent / "spreadwatch"
CREDIT, PNL_PAST_TARGET = 200.0, 150.0  # the default profit target is 0.50 x credit = 100
NOTIFY_TIMEOUT = 120.0

ANCHOR_RULES = """\
groups:
  - name: bench-anchor
    rules:
      - alert: BenchAnchorProfitTarget
        expr: bench_anchor_pnl_dollars >= bench_anchor_profit_target_dollars - 0.005
        labels:
          severity: warning
          category: exit
        annotations:
          summary: "ANCHOR - Position {{ $labels.position_id }} | Profit target hit"
          description: "The bare one-gauge exporter's position {{ $labels.position_id }} is past its target."
"""


class Anchor:
    """A bare prometheus_client exporter: a P&L gauge and a target gauge per position_id, nothing else."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.pnl = Gauge("bench_anchor_pnl_dollars", "P&L", ["position_id"], registry=self.registry)
        self.target = Gauge("bench_anchor_profit_target_dollars", "target", ["position_id"], registry=self.registry)
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self.address = f"127.0.0.1:{self.port}"

    def add(self, position_id: str) -> None:
        self.target.labels(position_id).set(CREDIT * 0.5)
        self.pnl.labels(position_id).set(0.0)

    def remove(self, position_id: str) -> None:
        self.pnl.remove(position_id)
        self.target.remove(position_id)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Exporter:
    """`spreadwatch run` on the bundled replay day at 1x, its book in ``workdir``; the CLI at the replay instant."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.book = workdir / "book.db"
        self.address = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.address}/metrics"
        start = ReplayProvider(bundled_path("replay_sample.csv")).default_start(MarketCalendar()) + timedelta(minutes=15)
        self.process = ManagedProcess("exporter", [str(SPREADWATCH), "run", "--listen", self.address, "--db",
                                                   str(self.book), "--start", start.isoformat()], workdir)
        self.process.wait_ready(self.url, 60)
        self.offset = 0.0  # replay clock minus wall clock

    def metrics(self) -> str:
        return requests.get(self.url, timeout=5).text

    def wait_fresh(self) -> None:
        """Until the replayed session is open and every source is fresh (the first replayed bar has arrived)."""
        def fresh() -> bool:
            text = self.metrics()
            stale_after = sample_value(text, "spreadwatch_stale_after_seconds") or 0.0
            ages = [line for line in text.splitlines() if line.startswith("spreadwatch_source_age_seconds{")]
            return (sample_value(text, "spreadwatch_market_open") == 1.0 and bool(ages)
                    and all(float(line.rsplit(" ", 1)[1]) <= stale_after for line in ages))

        wait_until(fresh, 240, "fresh replay data in the session", interval=1.0)
        clock = sample_value(self.metrics(), "spreadwatch_clock_timestamp_seconds")
        self.offset = (clock or time.time()) - time.time()

    def cli(self, *args: str) -> str:
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + self.offset))
        env = {**os.environ, "SPREADWATCH_NOW": now}
        done = subprocess.run([str(SPREADWATCH), "positions", *args, "--db", str(self.book)], env=env,
                              capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"spreadwatch positions {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def add_position(self) -> str:
        out = self.cli("add", "--dte", "5", "--band", "P95", "--spread", "put_spread", "--contracts", "1",
                       "--credit", str(CREDIT), "--short-put", "2000", "--long-put", "1990", "--json")
        return json.loads(out)["id"]

    def stop(self) -> None:
        self.process.stop()


def slack_text(body: object) -> str:
    """The text of a Slack message (its attachments); "" for anything else the sink got (the phone's push)."""
    if not isinstance(body, dict) or "attachments" not in body:
        return ""
    return json.dumps(body["attachments"])


def run_trial(exporter: Exporter, anchor: Anchor, prom, slack, trial: int) -> tuple[float, float]:
    pid = exporter.add_position()
    aid = f"anchor{trial}"
    anchor.add(aid)
    wait_until(lambda: prom.query(f'spreadwatch_position_profit_target_dollars{{position_id="{pid}"}}')
               and prom.query(f'bench_anchor_pnl_dollars{{position_id="{aid}"}}'), 60, "both positions scraped", 0.5)
    time.sleep(random.uniform(0, 15))
    start = time.monotonic()
    anchor.pnl.labels(aid).set(PNL_PAST_TARGET)
    exporter.cli("update", pid, "--pnl", str(PNL_PAST_TARGET))

    def arrival(needle: str) -> float:
        message = slack.wait_for(lambda m: m.monotonic >= start and needle in slack_text(m.body), NOTIFY_TIMEOUT,
                                 f"the Slack message of {needle}")
        return message.monotonic - start

    ours = arrival(f"Position {pid} ")
    base = arrival(f"Position {aid} ")
    exporter.cli("close", pid, "--pnl", str(PNL_PAST_TARGET))
    anchor.remove(aid)
    return ours, base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="paired trials (at least 6)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    args = parser.parse_args()
    if args.trials < 6:
        parser.error("--trials: at least 6")
    for binary in ("prometheus", "prometheus-alertmanager"):
        if shutil.which(binary) is None:
            parser.error(f"{binary} not found on PATH")
    workdir = Path(tempfile.mkdtemp(prefix="bench-exit-latency-"))
    (workdir / "prometheus-config").mkdir()
    (workdir / "prometheus-config" / "bench-anchor.yml").write_text(ANCHOR_RULES, encoding="utf-8")
    started = []
    try:
        slack, smtp = start_http_sink(), start_smtp_sink()
        started += [slack, smtp]
        anchor = Anchor()
        started.append(anchor)
        exporter = Exporter(workdir)
        started.append(exporter)
        am = start_alertmanager(repo_routing(workdir, smtp.smarthost, slack.url), workdir,
                                templates_dir=ROOT / "alertmanager" / "templates")
        started.append(am)
        prom = start_prometheus(ROOT / "prometheus", workdir,
                                targets={"spreadwatch": [exporter.address], "bench_anchor": [anchor.address]},
                                alertmanager_urls=[am.url], scrape_interval="15s", evaluation_interval="15s",
                                rule_files=["rules/*.yml", "bench-anchor.yml"], resend_delay="1m")
        started.append(prom)
        print("waiting for fresh replay data and the first scrapes ...", flush=True)
        exporter.wait_fresh()
        prom.wait_for_up("spreadwatch", timeout=60)
        prom.wait_for_up("bench_anchor", timeout=60)
        if any(a["labels"]["alertname"] == "SpreadwatchMarketDataStale" for a in prom.alerts()):
            raise RuntimeError("SpreadwatchMarketDataStale is active: exit notifications would be inhibited")
        ours, base = [], []
        for trial in range(args.trials):
            o, b = run_trial(exporter, anchor, prom, slack, trial)
            ours.append(o)
            base.append(b)
            print(f"  trial {trial + 1}: ours {o:5.1f} s   anchor {b:5.1f} s   difference {o - b:+5.1f} s", flush=True)
    finally:
        for item in reversed(started):
            item.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs in {workdir}")
    med_o, med_b = statistics.median(ours), statistics.median(base)
    diffs = [o - b for o, b in zip(ours, base, strict=True)]
    print(f"positions update -> Slack, {args.trials} paired trials, scrape/evaluation 15 s, exit group_wait 10 s")
    print(f"  ours   median {med_o:5.1f} s  (range {min(ours):.1f}-{max(ours):.1f} s)")
    print(f"  anchor median {med_b:5.1f} s  (range {min(base):.1f}-{max(base):.1f} s)")
    print(f"  paired difference median {statistics.median(diffs):+.1f} s, mean {statistics.fmean(diffs):+.1f} s "
          f"(range {min(diffs):+.1f} to {max(diffs):+.1f} s)")
    ok = med_o <= med_b + TARGET_MARGIN
    print(f"  target: ours <= anchor + {TARGET_MARGIN:.0f} s ({med_b + TARGET_MARGIN:.1f} s): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
