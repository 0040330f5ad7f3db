"""Exit latency on the real stack: from `spreadwatch positions update` (a P&L past the profit target) to the Slack
webhook receiving the exit notification, against a bare one-gauge prometheus_client exporter on the same stack.

The stack runs at production intervals: the repo's prometheus/prometheus.yml with its rules, scrape and evaluation
every 15 s, and the repo's alertmanager/alertmanager.yml routing unchanged (the exit route's group_wait 10 s),
delivering Slack to a loopback HTTP sink and email to a loopback SMTP sink. Only the delivery addresses change.

Ours: the real exporter (`spreadwatch run`, a separate process) on the bundled replay day at 1x, started 15
replayed minutes after the open, so the exit rule's gates hold from the first scrape (`spreadwatch_market_open == 1`,
every source fresh) and no SpreadwatchMarketDataStale (which inhibits exits) fires: at the open itself every source
still holds the previous close until the first bar arrives, and a Prometheus that starts then sees that as stale.
Each trial logs a new position (`positions add`, untimed), waits until Prometheus has scraped it, then times
`positions update ID --pnl 150` (the target is 50 % of a 200 credit) to the Slack message naming the position
(SpreadwatchProfitTarget). The CLI runs at the replay clock's instant (SPREADWATCH_NOW), as a trader on that day.

The anchor (why it is fair): a one-gauge prometheus_client exporter in this process, scraped by the same Prometheus
at the same interval, with an alert of the same shape as the exit rule (a P&L gauge against a target gauge, no
`for:`, category=exit, severity=warning), so it takes the very same Alertmanager route and receiver (group per
position, group_wait 10 s, Slack and email). It has nothing to notice, no process to start and no book to read, so
it is the floor the stack allows: wait for the next scrape + scrape-to-evaluation gap + group_wait + delivery.

Phases (why the comparison is paired). Prometheus scrapes each target at its own phase within the 15 s interval
(a hash of the target's labels and URL, here random free ports) and evaluates each rule group at its own phase
(a hash of the group). The gap from a target's scrape to the next evaluation of the group is then a constant of
the run, anywhere in 0-15 s, and it differs between two targets by up to 15 s: two runs of the same code could
land 3 s apart for that alone. So:
- the anchor's rule is added to the exit rules' own group (spreadwatch-exits) in the benchmark's copy of the
  rules: both alerts are evaluated at the same instants;
- the anchor is offered to Prometheus under many target label sets at once (file_sd, a `candidate` label: each
  set hashes to its own scrape phase); after one interval the one whose scrape phase (/api/v1/targets
  lastScrape) is nearest ours is kept, within PHASE_TOLERANCE, and the others dropped. The phases and the two
  scrape-to-evaluation gaps (/api/v1/rules lastEvaluation) are printed;
- each trial picks a lead d (stratified over the 15 s interval, shuffled) and starts each side d seconds before
  its own target's next scrape: the update command at (our next scrape - d), the anchor's gauge at (its next
  scrape - d). Both then face the same scrape wait and the same evaluation gap, and what differs is what the
  exporter adds: the CLI's start-up and write, the book watch noticing the change (it looks every second), the
  positions task, and the snapshot's publication. When that takes longer than d, our change misses the scrape
  the anchor makes and waits a whole interval more: that is the real cost, and it is counted.

Per trial the breakdown: the command's write (the stamps of the book and its -wal moving, a stat of each every
5 ms: no connection, which would change how SQLite treats the side files), the change visible on the exporter's
/metrics (polled every 50 ms from the write on), the first Prometheus sample showing it (its scrape's timestamp),
the alert firing (the first `ALERTS{alertstate="firing"}` sample, its evaluation's timestamp), the Slack
notification; the same for the anchor (set, scrape, firing, notification). The exporter's own part is write -> visible on /metrics (a target of 1 s: the book watch
looks every second).

Targets: our median within the anchor's median + 2 s, and the exporter's own part (write -> /metrics) at most 1 s
in the median. Exits 1 when either is missed.
Usage: python benchmarks/bench_exit_latency.py [--trials 8] [--keep]   (about 1 min per trial, 2 min setup)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import requests
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from spreadwatch.config import bundled_path
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.edges.providers.replay import ReplayProvider

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from realstack import (  # noqa: E402
    ManagedProcess,
    exposition_samples,
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
EXPORTER_TARGET = 1.0  # seconds from the book's commit to /metrics
INTERVAL = 15.0  # production scrape and evaluation interval
PHASE_TOLERANCE = 0.5  # seconds between our scrape phase and the anchor's
CANDIDATES = 60  # anchor label sets offered per round of phase matching
SPREADWATCH = Path(sys.executable).parent / "spreadwatch"
CREDIT, PNL_PAST_TARGET = 200.0, 150.0  # the default profit target is 0.50 x credit = 100
NOTIFY_TIMEOUT = 120.0
EXIT_GROUP = "spreadwatch-exits"

ANCHOR_RULE = {
    "alert": "BenchAnchorProfitTarget",
    "expr": "bench_anchor_pnl_dollars >= bench_anchor_profit_target_dollars - 0.005",
    "labels": {"severity": "warning", "category": "exit"},
    "annotations": {
        "summary": "ANCHOR - Position {{ $labels.position_id }} | Profit target hit",
        "description": "The bare one-gauge exporter's position {{ $labels.position_id }} is past its target.",
    },
}


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

    def command(self, *args: str) -> list[str]:
        return [str(SPREADWATCH), "positions", *args, "--db", str(self.book)]

    def env(self) -> dict[str, str]:
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + self.offset))
        return {**os.environ, "SPREADWATCH_NOW": now}

    def cli(self, *args: str) -> str:
        done = subprocess.run(self.command(*args), env=self.env(), capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"spreadwatch positions {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def add_position(self) -> str:
        out = self.cli("add", "--dte", "5", "--band", "P95", "--spread", "put_spread", "--contracts", "1",
                       "--credit", str(CREDIT), "--short-put", "2000", "--long-put", "1990", "--json")
        return json.loads(out)["id"]

    def shows(self, position_id: str) -> bool:
        """Whether /metrics shows the position's exit P&L past the target."""
        return any(s.name == "spreadwatch_position_exit_pnl_dollars" and s.labels.get("position_id") == position_id
                   and s.value >= PNL_PAST_TARGET - 0.005 for s in exposition_samples(self.metrics()))

    def stop(self) -> None:
        self.process.stop()


def book_stamp(book: Path) -> tuple:
    """The stamps of the book and its -wal file (inode, size, modification time): every commit moves one of them.
    A stat, not a connection: a connection held open by this process would change how SQLite treats the book's
    side files (it keeps the -wal and -shm from being removed when a command closes the book)."""
    def stamp(path: Path) -> tuple[int, int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    return stamp(book), stamp(Path(f"{book}-wal"))


class ChangeWatch(threading.Thread):
    """From `begin()`, called just before the update command starts: when the book's commit happened (its files'
    stamps polled every 5 ms) and when /metrics first showed the change (polled every 50 ms from the commit on), as
    wall-clock instants. The stamps' baseline is taken at `begin()`, not earlier: in the seconds before it the
    exporter's own read after the previous `add` may checkpoint the book, which moves them too."""

    def __init__(self, exporter: Exporter, position_id: str) -> None:
        super().__init__(daemon=True)
        self.exporter, self.position_id = exporter, position_id
        self.baseline: tuple | None = None
        self.written: float | None = None
        self.visible: float | None = None
        self.go = threading.Event()
        self.halt = threading.Event()

    def begin(self) -> None:
        self.baseline = book_stamp(self.exporter.book)
        self.go.set()

    def run(self) -> None:
        while not self.go.wait(0.05):
            if self.halt.is_set():
                return
        while self.written is None and not self.halt.is_set():
            if book_stamp(self.exporter.book) != self.baseline:
                self.written = time.time()
            else:
                time.sleep(0.005)
        while self.visible is None and not self.halt.is_set():
            try:
                shown = self.exporter.shows(self.position_id)
            except requests.RequestException:
                shown = False
            if shown:
                self.visible = time.time()
            else:
                time.sleep(0.05)


# ------------------------------------------------------------------------------------------------------------
# The stack and its phases


def prometheus_dir(workdir: Path) -> Path:
    """A copy of the repo's prometheus/ with the anchor's rule added to the exit rules' group."""
    target = workdir / "prometheus-source"
    shutil.copytree(ROOT / "prometheus", target)
    path = target / "rules" / "spreadwatch-exits.yml"
    rules = yaml.safe_load(path.read_text(encoding="utf-8"))
    group = next(g for g in rules["groups"] if g["name"] == EXIT_GROUP)
    group["rules"].append(ANCHOR_RULE)
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return target


def unix(stamp: str) -> float:
    """A Prometheus API time (RFC 3339, up to nanoseconds) as Unix seconds."""
    match = re.fullmatch(r"([0-9-]+T[0-9:]+)(?:\.([0-9]+))?(Z|[+-][0-9:]+)", stamp)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {stamp!r}")
    whole, fraction, zone = match.groups()
    base = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).timestamp()
    return base + (float("0." + fraction) if fraction else 0.0)


def phase(seconds: float) -> float:
    return seconds % INTERVAL


def phase_distance(a: float, b: float) -> float:
    """Signed a - b on the 15 s circle, in [-7.5, 7.5)."""
    return (a - b + INTERVAL / 2) % INTERVAL - INTERVAL / 2


@dataclass
class Phases:
    ours: float  # scrape phase of our target (seconds into the 15 s interval)
    anchor: float
    evaluation: float  # the exit group's evaluation phase
    candidate: str
    rounds: int

    def gap(self, scrape: float) -> float:
        """Seconds from a scrape at phase `scrape` to the group's next evaluation."""
        return (self.evaluation - scrape) % INTERVAL

    def describe(self) -> str:
        return (f"scrape phases: ours {self.ours:.2f} s, anchor {self.anchor:.2f} s (candidate {self.candidate}, "
                f"difference {phase_distance(self.anchor, self.ours):+.2f} s, {self.rounds} round(s)); evaluation "
                f"phase of {EXIT_GROUP} {self.evaluation:.2f} s; scrape-to-evaluation gap ours "
                f"{self.gap(self.ours):.2f} s, anchor {self.gap(self.anchor):.2f} s")


class Stack:
    """Prometheus scraping the exporter (static) and the anchor (file_sd, so its labels can change), evaluating
    the repo's rules plus the anchor's rule in the exit group, sending to Alertmanager."""

    def __init__(self, prom, anchor: Anchor, workdir: Path) -> None:
        self.prom, self.anchor = prom, anchor
        self.sd_file = workdir / "bench-anchor-targets.json"

    def offer(self, labels: list[str]) -> None:
        groups = [{"targets": [self.anchor.address], "labels": {"candidate": c}} for c in labels]
        tmp = self.sd_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups), encoding="utf-8")
        tmp.replace(self.sd_file)

    def add_anchor_job(self, labels: list[str]) -> None:
        self.offer(labels)
        config = yaml.safe_load(self.prom.config_path.read_text(encoding="utf-8"))
        config["scrape_configs"].append({"job_name": "bench_anchor", "file_sd_configs": [
            {"files": [str(self.sd_file)], "refresh_interval": "5s"}]})
        self.prom.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        requests.post(f"{self.prom.url}/-/reload", timeout=30).raise_for_status()

    def scrape_phases(self, job: str) -> dict[str, float]:
        """Scrape phase per target of `job` (by its `candidate` label, or "" without one), once each has scraped."""
        return {target["labels"].get("candidate", ""): phase(unix(target["lastScrape"]))
                for target in self.prom.targets()
                if target["labels"].get("job") == job and not target["lastScrape"].startswith("0001")}

    def phase_of(self, job: str, candidate: str = "") -> float:
        found = wait_until(lambda: [p for c, p in self.scrape_phases(job).items() if c == candidate], 60,
                           f"a scrape of {job} {candidate}", 1.0)
        return found[0]

    def evaluation_phase(self) -> float:
        def evaluated() -> list[float]:
            group = next(g for g in self.prom.rules() if g["name"] == EXIT_GROUP)
            stamp = group.get("lastEvaluation", "")
            return [] if not stamp or stamp.startswith("0001") else [phase(unix(stamp))]

        return wait_until(evaluated, 60, f"an evaluation of {EXIT_GROUP}", interval=1.0)[0]

    def nearest(self, labels: list[str], ours: float) -> tuple[str, float]:
        """The label set of `labels` whose scrape phase is nearest `ours`, and how far (once all have scraped)."""
        wanted = set(labels)

        def all_scraped() -> dict[str, float] | None:
            phases = self.scrape_phases("bench_anchor")
            return phases if wanted <= set(phases) else None

        seen = wait_until(all_scraped, 90, "every anchor candidate scraped", 1.0)
        best = min(labels, key=lambda c: abs(phase_distance(seen[c], ours)))
        return best, abs(phase_distance(seen[best], ours))

    def keep_only(self, candidate: str) -> None:
        self.offer([candidate])
        wait_until(lambda: set(self.scrape_phases("bench_anchor")) == {candidate}, 60, "the other candidates gone",
                   1.0)

    def match_phases(self) -> Phases:
        """Offer CANDIDATES label sets per round until one scrapes within PHASE_TOLERANCE of our target; keep it."""
        ours = self.phase_of("spreadwatch")
        for rounds in range(1, 6):
            labels = [f"r{rounds}c{k}" for k in range(CANDIDATES)]
            if rounds == 1:
                self.add_anchor_job(labels)
            else:
                self.offer(labels)
            best, distance = self.nearest(labels, ours)
            if distance <= PHASE_TOLERANCE:
                self.keep_only(best)
                return Phases(self.phase_of("spreadwatch"), self.phase_of("bench_anchor", best),
                              self.evaluation_phase(), best, rounds)
        raise RuntimeError(f"no anchor label set scraped within {PHASE_TOLERANCE} s of our target's phase")


# ------------------------------------------------------------------------------------------------------------
# Trials


@dataclass
class Side:
    """One side of a trial, instants in Unix seconds; None: not observed."""

    started: float
    written: float | None = None
    visible: float | None = None
    scraped: float | None = None
    firing: float | None = None
    notified: float | None = None

    def since(self, instant: float | None) -> float | None:
        return None if instant is None else instant - self.started

    @property
    def total(self) -> float:
        assert self.notified is not None
        return self.notified - self.started


@dataclass
class Trial:
    lead: float
    ours: Side
    anchor: Side
    extra: dict[str, float] = field(default_factory=dict)


def next_scrape(scrape_phase: float, after: float) -> float:
    """The first instant later than `after` at `scrape_phase` of the interval."""
    base = after - phase(after) + scrape_phase
    return base if base > after else base + INTERVAL


def first_sample(prom, selector: str, since: float, minimum: float | None = None) -> float | None:
    """Timestamp of the first raw sample of `selector` at or after `since` (with a value >= `minimum` if given)."""
    result = prom.query(f"{selector}[3m]")
    stamps = [float(ts) for series in result for ts, value in series["values"]
              if float(ts) >= since - 0.001 and (minimum is None or float(value) >= minimum)]
    return min(stamps) if stamps else None


def slack_text(body: object) -> str:
    """The text of a Slack message (its attachments); "" for anything else the sink got (the phone's push)."""
    if not isinstance(body, dict) or "attachments" not in body:
        return ""
    return json.dumps(body["attachments"])


def sleep_until(instant: float) -> None:
    time.sleep(max(0.0, instant - time.time()))


def start_both(exporter: Exporter, anchor: Anchor, phases: Phases, pid: str, aid: str, lead: float
               ) -> tuple[Side, Side, ChangeWatch, subprocess.Popen]:
    """Start the update `lead` s before our next scrape and set the anchor's gauge `lead` s before its own."""
    at_ours = next_scrape(phases.ours, time.time() + lead + 1.0) - lead
    at_anchor = next_scrape(phases.anchor, at_ours + lead - INTERVAL / 2) - lead
    command, env = exporter.command("update", pid, "--pnl", str(PNL_PAST_TARGET)), exporter.env()
    watch = ChangeWatch(exporter, pid)
    watch.start()
    process = None
    for instant, side in sorted([(at_ours, "ours"), (at_anchor, "anchor")]):
        sleep_until(instant)
        if side == "ours":
            watch.begin()
            ours = Side(time.time())
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        else:
            base = Side(time.time())
            anchor.pnl.labels(aid).set(PNL_PAST_TARGET)
    assert process is not None
    return ours, base, watch, process


def run_trial(exporter: Exporter, anchor: Anchor, prom, slack, phases: Phases, trial: int, lead: float) -> Trial:
    pid = exporter.add_position()
    aid = f"anchor{trial}"
    anchor.add(aid)
    wait_until(lambda: prom.query(f'spreadwatch_position_profit_target_dollars{{position_id="{pid}"}}')
               and prom.query(f'bench_anchor_pnl_dollars{{position_id="{aid}"}}'), 60, "both positions scraped", 0.5)
    ours, base, watch, process = start_both(exporter, anchor, phases, pid, aid, lead)
    _, err = process.communicate(timeout=60)
    if process.returncode:
        raise RuntimeError(f"spreadwatch positions update: {err.strip()}")
    ours.notified = slack.wait_for(lambda m: m.wall >= ours.started and f"Position {pid} " in slack_text(m.body),
                                   NOTIFY_TIMEOUT, f"the Slack message of {pid}").wall
    base.notified = slack.wait_for(lambda m: m.wall >= base.started and f"Position {aid} " in slack_text(m.body),
                                   NOTIFY_TIMEOUT, f"the Slack message of {aid}").wall
    watch.halt.set()
    watch.join(5)
    ours.written, ours.visible = watch.written, watch.visible
    base.written = base.visible = base.started
    ours.scraped = first_sample(prom, f'spreadwatch_position_exit_pnl_dollars{{position_id="{pid}"}}', ours.started,
                                PNL_PAST_TARGET - 0.005)
    base.scraped = first_sample(prom, f'bench_anchor_pnl_dollars{{position_id="{aid}"}}', base.started,
                                PNL_PAST_TARGET - 0.005)
    firing = 'ALERTS{{alertname="{}",alertstate="firing",position_id="{}"}}'
    ours.firing = first_sample(prom, firing.format("SpreadwatchProfitTarget", pid), ours.started)
    base.firing = first_sample(prom, firing.format("BenchAnchorProfitTarget", aid), base.started)
    exporter.cli("close", pid, "--pnl", str(PNL_PAST_TARGET))
    anchor.remove(aid)
    return Trial(lead, ours, base)


def fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.2f}"


def trial_line(number: int, t: Trial) -> str:
    o, a = t.ours, t.anchor
    return (f"  trial {number}: lead {t.lead:4.1f} s | ours: write {fmt(o.since(o.written))} /metrics "
            f"{fmt(o.since(o.visible))} scrape {fmt(o.since(o.scraped))} firing {fmt(o.since(o.firing))} Slack "
            f"{o.total:5.1f} | anchor: scrape {fmt(a.since(a.scraped))} firing {fmt(a.since(a.firing))} Slack "
            f"{a.total:5.1f} | difference {o.total - a.total:+5.1f} s")


def leads(trials: int) -> list[float]:
    """One lead per trial, stratified over the interval (one in each of `trials` equal slices), shuffled."""
    out = [(k + random.random()) * INTERVAL / trials for k in range(trials)]
    random.shuffle(out)
    return out


def summary(trials: list[Trial], phases: Phases) -> bool:
    ours = [t.ours.total for t in trials]
    base = [t.anchor.total for t in trials]
    diffs = [o - b for o, b in zip(ours, base, strict=True)]
    own = [t.ours.visible - t.ours.written for t in trials if t.ours.visible and t.ours.written]
    cli = [t.ours.written - t.ours.started for t in trials if t.ours.written]
    med_o, med_b = statistics.median(ours), statistics.median(base)
    print(f"positions update -> Slack, {len(trials)} paired trials, scrape/evaluation 15 s, exit group_wait 10 s")
    print(f"  {phases.describe()}")
    print(f"  ours   median {med_o:5.1f} s  (range {min(ours):.1f}-{max(ours):.1f} s)")
    print(f"  anchor median {med_b:5.1f} s  (range {min(base):.1f}-{max(base):.1f} s)")
    print(f"  paired difference median {statistics.median(diffs):+.1f} s, mean {statistics.fmean(diffs):+.1f} s "
          f"(range {min(diffs):+.1f} to {max(diffs):+.1f} s)")
    if cli:
        print(f"  update command start -> book commit: median {statistics.median(cli):.2f} s, max {max(cli):.2f} s")
    ok = med_o <= med_b + TARGET_MARGIN
    print(f"  target: ours <= anchor + {TARGET_MARGIN:.0f} s ({med_b + TARGET_MARGIN:.1f} s): {'met' if ok else 'MISSED'}")
    if len(own) < len(trials):
        print(f"  book commit -> /metrics: observed in {len(own)} of {len(trials)} trials")
    if not own:
        return False
    own_ok = statistics.median(own) <= EXPORTER_TARGET
    print(f"  exporter's own part, book commit -> /metrics: median {statistics.median(own):.2f} s, max "
          f"{max(own):.2f} s (target <= {EXPORTER_TARGET:.0f} s: {'met' if own_ok else 'MISSED'})")
    return ok and own_ok


def start_stack(workdir: Path, started: list) -> tuple:
    slack, smtp = start_http_sink(), start_smtp_sink()
    started += [slack, smtp]
    anchor = Anchor()
    started.append(anchor)
    exporter = Exporter(workdir)
    started.append(exporter)
    am = start_alertmanager(repo_routing(workdir, smtp.smarthost, slack.url), workdir,
                            templates_dir=ROOT / "alertmanager" / "templates")
    started.append(am)
    prom = start_prometheus(prometheus_dir(workdir), workdir, targets={"spreadwatch": [exporter.address]},
                            alertmanager_urls=[am.url], scrape_interval="15s", evaluation_interval="15s",
                            resend_delay="1m")
    started.append(prom)
    return slack, anchor, exporter, prom


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
    started: list = []
    trials: list[Trial] = []
    try:
        slack, anchor, exporter, prom = start_stack(workdir, started)
        print("waiting for fresh replay data, the first scrapes and the anchor's phase ...", flush=True)
        exporter.wait_fresh()
        prom.wait_for_up("spreadwatch", timeout=60)
        phases = Stack(prom, anchor, workdir).match_phases()
        print(f"  {phases.describe()}", flush=True)
        if any(a["labels"]["alertname"] == "SpreadwatchMarketDataStale" for a in prom.alerts()):
            raise RuntimeError("SpreadwatchMarketDataStale is active: exit notifications would be inhibited")
        for number, lead in enumerate(leads(args.trials), 1):
            trials.append(run_trial(exporter, anchor, prom, slack, phases, number, lead))
            print(trial_line(number, trials[-1]), flush=True)
    finally:
        for item in reversed(started):
            item.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs in {workdir}")
    return 0 if summary(trials, phases) else 1


if __name__ == "__main__":
    sys.exit(main())
