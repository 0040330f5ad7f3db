"""High availability, tested by killing its parts (and the pair's config, checked statically first: promtool, the
same rules, jobs and exporter target as the single node, the `replica` label dropped from alerts and nothing else).

A Prometheus pair (two replicas running prometheus/prometheus-ha.yml and the repo's rules: external label `replica`,
dropped from alerts by alert_relabel_configs; each sends to every Alertmanager) and a 3-member Alertmanager cluster
(the repo's routing; member 1 started without peers as the compose `alertmanager` service is, members 2 and 3 naming
the others) in front of ONE real exporter (`spreadwatch run --ticker NDX` on the NDX replay day from 12:00 ET, at
1x) whose positions are driven with the CLI. Notifications go to an SMTP sink and an HTTP sink standing in for Slack; each
member has its own webhook path and puts its URL in emails, so the sinks tell which member sent what.

1. Both replicas fire the same stop loss: each channel gets it once, and its resolution once.
2. The Alertmanager that would notify first (cluster position 0) is SIGKILLed after the alert reached it and
   before its group_wait ended: another member delivers it, once per channel.
3. A Prometheus replica is SIGKILLed: a new stop loss still arrives (from the other replica), and a stop loss that
   is still true is kept alive by the survivor (its end time in Alertmanager moves past the dead replica's last
   word) and never resolved.
4. A silence created on one member (through its API, on the member that would notify last) holds on the others.

Latency from the exporter showing the condition to the notification, with and without the kills, is printed
(`pytest -n 0 -s`). Timers are short (scrape and evaluation 1 s, group_wait 6 s, peer timeout 2 s); every wait is for
a state (a notification arrived, a member count, a silence replicated), with generous timeouts.

Two facts of Alertmanager's design shape the checks. A member waits position x peer timeout before it notifies,
then only if no member did (the notification log is gossiped): duplicates are possible only when members cannot
gossip (a partition), never here, so any duplicate fails the test. And the replicas see a change at different
evaluations (their scrapes are offset), so for up to ~2 evaluations one says resolved while the other still says
firing; a flush inside that window would announce the resolution, then the stop again (the "HA flap", see
docs/deploy.md). The test closes the position right after the stop was announced and uses a group_interval (10 s)
longer than that window, so the resolution's flush comes after both replicas agree.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from realstack import (
    ClusterMember,
    ManagedProcess,
    MetricsWatcher,
    Prometheus,
    SmtpSink,
    free_port,
    kill,
    repo_routing,
    slack_shown,
    start_alertmanager_cluster,
    start_http_sink,
    start_prometheus_replica,
    start_smtp_sink,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[1]
PEER_TIMEOUT = 2.0      # --cluster.peer-timeout (15 s in production)
GROUP_WAIT = 6.0        # every route's group_wait here: the window in which the notifying member is killed (long
                        # enough for the test to see the alert arrive and kill its member on a loaded machine)
GROUP_INTERVAL = 10.0   # longer than the replicas' disagreement after a change (see the module docstring)
RESEND_DELAY = 1.0      # --rules.alert.resend-delay: a firing alert's end time is 4 x max(this, evaluation) ahead
EVALUATION = 1.0
WAIT = 60.0             # safety timeout of every wait for a state
REPLAY_START = "2026-11-24T17:00:00Z"  # 12:00 ET: open session, fresh data, no entry window, no recent regime change
CONFIG = """\
risk:
  max_total_risk: 1000000.0
  max_positions: 50
intervals:
  positions_seconds: 1
"""


def cluster_routing(workdir: Path, smtp: SmtpSink, slack_url: str) -> dict:
    """The repo's routing for one member: the sinks as destinations, the test's timers."""
    workdir.mkdir(parents=True, exist_ok=True)
    return repo_routing(workdir, smtp.smarthost, slack_url, group_wait=f"{GROUP_WAIT:g}s",
                        group_interval=f"{GROUP_INTERVAL:g}s")


@dataclass
class Note:
    """One notification as the trader sees it: channel, arrival (monotonic), the member that sent it, its text."""

    channel: str
    at: float
    member: str
    text: str


@dataclass
class Ha:
    tmp: Path
    smtp: SmtpSink = field(default_factory=start_smtp_sink)
    slack: object = field(default_factory=start_http_sink)
    members: list[ClusterMember] = field(default_factory=list)
    proms: dict[str, Prometheus] = field(default_factory=dict)
    exporter: ManagedProcess | None = None
    watcher: MetricsWatcher | None = None

    def member_name(self, url: str) -> str:
        return next((f"am{i + 1}" for i, m in enumerate(self.members) if m.url == url), url)

    def notes(self) -> list[Note]:
        out = []
        for m in self.slack.snapshot():
            for att in m.body.get("attachments", []):
                member = m.path.rsplit("/", 1)[-1]
                out.append(Note("slack", m.monotonic, member,
                                slack_shown(att.get("title", "") + "\n" + att.get("text", ""))))
        for m in self.smtp.snapshot():
            text = SmtpSink.text_of(m.body).replace("\r\n", "\n")
            url = re.search(r"^Alertmanager: (\S+)$", text, re.M)
            out.append(Note("email", m.monotonic, self.member_name(url[1]) if url else "?", m.body["Subject"] + "\n" + text))
        return sorted(out, key=lambda n: n.at)

    def stop(self) -> None:
        for part in [self.watcher, *self.proms.values(), self.exporter, *self.members, self.smtp, self.slack]:
            if part is not None:
                part.stop()


def stop_loss(pid: str, resolved: bool = False):
    def matches(note: Note) -> bool:
        return f"Position {pid} | Reason: Stop loss hit" in note.text and ("[RESOLVED]" in note.text) == resolved
    return matches


def wait_note(ha: Ha, channel: str, predicate, what: str) -> Note:
    return wait_until(lambda: next((n for n in ha.notes() if n.channel == channel and predicate(n)), None),
                      WAIT, what, interval=0.05)


def count(ha: Ha, channel: str, predicate) -> int:
    return sum(1 for n in ha.notes() if n.channel == channel and predicate(n))


def when(predicate, what: str) -> float:
    """Waits for ``predicate``; returns the monotonic time it first held (polled every 0.1 s)."""
    wait_until(predicate, WAIT, what)
    return time.monotonic()


def pnl_line(pid: str, value: str) -> str:
    return rf'^spreadwatch_position_pnl_dollars\{{[^}}]*position_id="{pid}"[^}}]*\}} {value}$'


def am_alerts(member: ClusterMember, pid: str) -> list[dict]:
    return [a for a in member.alerts() if a["labels"].get("position_id") == pid
            and a["labels"]["alertname"] == "SpreadwatchStopLoss"]


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# ------------------------------------------------------------------------------ the pair's config, statically

PROM = ROOT / "prometheus"


def load(name: str) -> dict:
    return yaml.safe_load((PROM / name).read_text(encoding="utf-8"))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_checks_the_pair_config_and_its_rules():
    result = subprocess.run(["promtool", "check", "config", str(PROM / "prometheus-ha.yml")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert f"SUCCESS: {len(list((PROM / 'rules').glob('*.yml')))} rule files found" in out, out


def test_the_pair_evaluates_what_the_single_node_evaluates():
    single, pair = load("prometheus.yml"), load("prometheus-ha.yml")
    assert {k: v for k, v in pair["global"].items() if k != "external_labels"} == single["global"]
    assert pair["rule_files"] == single["rule_files"]
    jobs = {job["job_name"]: job for job in pair["scrape_configs"]}
    assert list(jobs) == [job["job_name"] for job in single["scrape_configs"]]
    assert jobs["spreadwatch"] == single["scrape_configs"][0]  # the same exporter target: the same alert labels


def test_the_replica_label_never_reaches_alertmanager():
    pair = load("prometheus-ha.yml")
    assert list(pair["global"]["external_labels"]) == ["replica"]
    drops = [c for c in pair["alerting"]["alert_relabel_configs"] if c.get("action") == "labeldrop"]
    assert any(re.fullmatch(c["regex"], "replica") for c in drops)
    # Nothing else is dropped or rewritten: the rest of the label set is what de-duplicates.
    assert len(pair["alerting"]["alert_relabel_configs"]) == len(drops) == 1
    assert not any(re.fullmatch(drops[0]["regex"], label) for label in ("alertname", "instance", "job", "position_id"))


# ----------------------------------------------------------------- the recipe without Docker (docs/deploy.md)


def recipe_blocks() -> list[str]:
    """The bash blocks of docs/deploy.md's "Without Docker: three machines"."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = text.split("### Without Docker: three machines", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def block_with(needle: str) -> str:
    (block,) = [b for b in recipe_blocks() if needle in b]
    return block


def rendered_default_file(block: str) -> str:
    """Runs the block's first line (the per-machine variables) and its printf pipeline, printing what it would
    write to /etc/default/... instead."""
    variables = block.splitlines()[0].split("#", 1)[0]
    pipeline = re.search(r"^printf .*?\| sudo tee \S+", block, flags=re.S | re.M)[0]
    script = variables + "\n" + re.sub(r"\| sudo tee \S+$", "", pipeline)
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True).stdout


def server_flags(binary: str) -> set[str]:
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return set(re.findall(r"--([a-z][a-z0-9.-]+)", out.stdout + out.stderr))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_the_recipe_rewrites_every_compose_name_and_the_result_passes_promtool(tmp_path):
    block = block_with("prometheus/prometheus-ha.yml")
    text = (PROM / "prometheus-ha.yml").read_text(encoding="utf-8")
    for old, new in re.findall(r"-e 's/([^/]+)/([^/]+)/g'", block):
        assert old in text, f"the recipe replaces {old}, which prometheus-ha.yml does not have"
        text = text.replace(old, new)
    config = yaml.safe_load(text)
    entries = config["scrape_configs"] + config["alerting"]["alertmanagers"]
    hosts = {target.rsplit(":", 1)[0] for entry in entries for sc in entry["static_configs"] for target in sc["targets"]}
    assert hosts == {"sw1", "sw2", "sw3"}, f"compose names left: {hosts}"
    shutil.copytree(PROM / "rules", tmp_path / "rules")
    (tmp_path / "prometheus.yml").write_text(text, encoding="utf-8")
    result = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="Debian's Alertmanager not installed")
def test_the_recipe_writes_flags_the_servers_have():
    replica = rendered_default_file(block_with("/etc/default/prometheus\n"))
    assert replica.splitlines()[0] == "PROMETHEUS_REPLICA=a"
    prometheus_args = re.search(r'^ARGS="(.*)"$', replica, flags=re.M)[1].split()
    assert "--enable-feature=expand-external-labels" in prometheus_args
    member = rendered_default_file(block_with("/etc/default/prometheus-alertmanager"))
    member_args = re.fullmatch(r'ARGS="(.*)"\n', member)[1].split()
    assert [a for a in member_args if a.startswith("--cluster.peer=")] == ["--cluster.peer=sw2:9094",
                                                                           "--cluster.peer=sw3:9094"]
    assert "--web.external-url=http://sw1:9093" in member_args
    for binary, args in (("prometheus", prometheus_args), ("prometheus-alertmanager", member_args)):
        known = server_flags(binary)
        for arg in args:
            assert arg.removeprefix("--").split("=")[0] in known, f"{binary} has no flag {arg}"
    assert "cluster.advertise-address" in server_flags("prometheus-alertmanager")  # named in the prose


# ------------------------------------------------------------------------------------------------- the stack


def start_stack(ha: Ha, cfg: Path, db: Path) -> None:
    from exporter_support import NDX_REPLAY

    configs = [cluster_routing(ha.tmp / f"routing-am{i}", ha.smtp, f"{ha.slack.url}/slack/am{i}") for i in (1, 2, 3)]
    ha.members = start_alertmanager_cluster(configs, ha.tmp, templates_dir=ROOT / "alertmanager" / "templates",
                                            peer_timeout=f"{PEER_TIMEOUT:g}s")
    port = free_port()
    ha.exporter = ManagedProcess("exporter", [
        sys.executable, "-m", "spreadwatch", "--config", str(cfg), "run", "--ticker", "NDX", "--source",
        f"replay:{NDX_REPLAY}", "--speed", "1", "--start", REPLAY_START,
        "--listen", f"127.0.0.1:{port}", "--db", str(db)], ha.tmp)
    ha.watcher = MetricsWatcher(f"http://127.0.0.1:{port}/metrics")
    prom_ports = {"a": free_port(), "b": free_port()}
    am_hosts = [m.url for m in ha.members]
    targets = {"spreadwatch": [f"127.0.0.1:{port}"],  # the same target string on both replicas: same alert labels
               "prometheus": [f"127.0.0.1:{p}" for p in prom_ports.values()],
               "alertmanager": [u.split("://")[1] for u in am_hosts]}
    for replica, prom_port in prom_ports.items():
        workdir = ha.tmp / f"prometheus-{replica}"
        workdir.mkdir()
        ha.proms[replica] = start_prometheus_replica(
            ROOT / "prometheus" / "prometheus-ha.yml", ROOT / "prometheus" / "rules", workdir, replica=replica,
            port=prom_port, targets=targets, alertmanager_urls=am_hosts, resend_delay=f"{RESEND_DELAY:g}s",
            evaluation_interval=f"{EVALUATION:g}s")


def wait_stack_ready(ha: Ha, pids: list[str]) -> None:
    ha.exporter.wait_ready(ha.watcher.url, WAIT)
    for prom in ha.proms.values():
        for job in ("spreadwatch", "prometheus", "alertmanager"):
            prom.wait_for_up(job, WAIT)
        # Every alert of the book reaches Prometheus from the exporter (P&L 0: none is at its stop yet).
        wait_until(lambda p=prom: len(p.query("spreadwatch_position_pnl_dollars")) == len(pids), WAIT,
                   "the book in Prometheus")
    for member in ha.members:
        wait_until(lambda m=member: [a for a in m.alerts() if a["labels"]["alertname"] == "SpreadwatchWatchdog"],
                   WAIT, "the watchdog in every member")


# --------------------------------------------------------------------------------------------- the scenarios


@pytest.mark.slow
def test_pair_and_cluster_survive_kills(tmp_path, capsys):
    cfg, db = tmp_path / "cfg.yml", tmp_path / "book.db"
    cfg.write_text(CONFIG, encoding="utf-8")
    ha = Ha(tmp_path)
    latencies: dict[str, float] = {}
    senders: dict[str, str] = {}
    positions: dict[str, int] = {}  # member -> its cluster position while all three were up
    started = time.monotonic()
    background = ThreadPoolExecutor(1)  # work that goes on while the test waits for something else

    def cli(*args: str) -> tuple[float, str]:
        begun = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "spreadwatch", "--config", str(cfg), *args, "--db", str(db)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert result.returncode == 0, f"spreadwatch {' '.join(args)}: {result.stdout}{result.stderr}"
        return begun, result.stdout

    def add() -> str:
        return json.loads(cli("positions", "add", "--ticker", "NDX", "--dte", "3", "--band", "P98", "--spread",
                              "put_spread", "--flow-mode", "with_flow", "--contracts", "1", "--credit", "285",
                              "--short-put", "19900", "--long-put", "19850", "--json")[1])["id"]

    def stop(pid: str) -> float:
        """Logs a P&L of -600 (the stop is -570); returns when the exporter first showed it."""
        begun, _ = cli("positions", "update", pid, "--pnl", "-600")
        return ha.watcher.when(pnl_line(pid, r"-600\.0"), after=begun, timeout=WAIT)

    def delivered(pid: str, label: str, shown: float, resolved: bool = False) -> None:
        for channel in ("slack", "email"):
            note = wait_note(ha, channel, stop_loss(pid, resolved), f"{label} on {channel}")
            latencies[f"{label} -> {channel}"] = note.at - shown
            senders[f"{label} -> {channel}"] = note.member

    try:
        book = background.submit(lambda: [add() for _ in range(5)])  # the book is written while the stack starts
        start_stack(ha, cfg, db)
        p1, p2, p3, p4, p5 = book.result(timeout=WAIT)
        wait_stack_ready(ha, [p1, p2, p3, p4, p5])
        setup_seconds = time.monotonic() - started
        assert ha.notes() == [], ha.notes()

        # Each replica carries its own external label (expanded from PROMETHEUS_REPLICA) where series leave it.
        for replica, prom in ha.proms.items():
            federated = requests.get(f"{prom.url}/federate", params={"match[]": 'up{job="spreadwatch"}'}, timeout=5)
            assert f'replica="{replica}"' in federated.text, federated.text

        # 1. Both replicas fire the same stop loss: one alert in every member (no `replica` label to split it),
        #    one notification per channel; closing the position resolves it once per channel.
        shown = stop(p1)
        delivered(p1, "stop loss, all up", shown)
        for member in ha.members:
            held = am_alerts(member, p1)
            assert len(held) == 1 and "replica" not in held[0]["labels"], held
        t_close, _ = cli("positions", "close", p1, "--pnl", "-600", "--note", "Stop loss")
        gone = ha.watcher.gone(f'position_id="{p1}"', after=t_close, timeout=WAIT)
        delivered(p1, "position closed, resolved", gone, resolved=True)

        # 4. (Before the kills, with all three members.) A silence created on the member that would notify last
        #    holds on the others (the one that notifies first included): the silenced stop loss is suppressed
        #    everywhere and never sent; the stop loss beside it is.
        by_position = sorted(ha.members, key=lambda m: m.position())
        silence = by_position[-1].create_silence({"alertname": "SpreadwatchStopLoss", "position_id": p4},
                                                 comment="handled at the broker")
        for member in ha.members:
            wait_until(lambda m=member: any(s["id"] == silence and s["status"]["state"] == "active"
                                            for s in m.silences()), WAIT, "the silence on every member")
        stop(p4)
        shown = stop(p5)
        delivered(p5, "stop loss, all up (beside a silence)", shown)
        for member in ha.members:
            wait_until(lambda m=member: [a for a in am_alerts(m, p4) if a["status"]["state"] == "suppressed"
                                         and silence in a["status"]["silencedBy"]], WAIT,
                       f"the silenced alert suppressed on {member.url}")

        # 2. Kill the member at position 0 after the alert reached it, before its group_wait ends.
        positions.update({ha.member_name(m.url): i for i, m in enumerate(by_position)})
        first = by_position[0]
        last_miss = time.monotonic()
        begun, _ = cli("positions", "update", p2, "--pnl", "-600")
        while True:
            polled = time.monotonic()
            if am_alerts(first, p2):
                break
            last_miss = polled
            assert polled - begun < WAIT, "the stop loss never reached the first member"
            time.sleep(0.02)
        killed_at = kill(first)
        assert killed_at - last_miss < GROUP_WAIT, (
            f"the member was killed {killed_at - last_miss:.1f} s after the alert could have reached it: not "
            f"within its group_wait ({GROUP_WAIT} s), so this run does not test the kill")
        shown = ha.watcher.when(pnl_line(p2, r"-600\.0"), after=begun, timeout=WAIT)
        delivered(p2, "stop loss, notifying member killed", shown)
        killed = ha.member_name(first.url)
        assert killed not in (senders["stop loss, notifying member killed -> slack"],
                              senders["stop loss, notifying member killed -> email"])
        survivors = [m for m in ha.members if m is not first]
        # When the survivors stop counting the dead member (their failure detector), watched while the test goes on.
        noticed = background.submit(when, lambda: all(len(m.status()["cluster"]["peers"]) == 2 for m in survivors),
                                    "the survivors see 2")

        # 3. Kill replica a. A new stop loss comes from b; the stop of p2, still true, is kept alive by b.
        killed_wall = ha.members[-1].clock() + 1  # the members' clock, rounded up (faketime does not reach Go)
        kill(ha.proms["a"])
        last_word = killed_wall + 4 * max(RESEND_DELAY, EVALUATION)  # the latest end time a could have sent
        shown = stop(p3)
        delivered(p3, "stop loss, one replica killed", shown)
        for member in survivors:
            (alert,) = am_alerts(member, p3)
            # generatorURL names the replica that sent it (Prometheus puts its host name and its port there).
            assert urlsplit(alert["generatorURL"]).port == urlsplit(ha.proms["b"].url).port, alert["generatorURL"]
            wait_until(lambda m=member: epoch(am_alerts(m, p2)[0]["endsAt"]) > last_word, WAIT,
                       "the surviving replica keeping the stop of p2 alive")
        wait_until(lambda: ha.proms["b"].query('ALERTS{alertname="SpreadwatchPrometheusDown"}'), WAIT,
                   "the replica-down rule pending on the surviving replica")

        # The killed member is noticed (while the scenario above ran): the survivors see 2 members, and the
        # members-missing rule is pending on the real cluster's metrics.
        removed_after = noticed.result(timeout=WAIT) - killed_at
        wait_until(lambda: ha.proms["b"].query('ALERTS{alertname="SpreadwatchAlertmanagerMembersMissing"}'), WAIT,
                   "the members-missing rule pending")
        assert float(ha.proms["b"].query("sum(prometheus_rule_evaluation_failures_total)")[0]["value"][1]) == 0

        # Long enough for any duplicate: the last member to look waits (members - 1) x the peer timeout.
        last = max(n.at for n in ha.notes())
        wait_until(lambda: time.monotonic() > last + 2 * PEER_TIMEOUT + 2, WAIT, "the duplicate window")
        counts = {(pid, channel, resolved): count(ha, channel, stop_loss(pid, resolved))
                  for pid in (p1, p2, p3, p4, p5) for channel in ("slack", "email") for resolved in (False, True)}
        # Once each: p1's stop and its resolution; the stops of p2, p3, p5 (still open, never resolved). p4: never.
        expected = {(pid, channel, resolved): int(pid == p1 or (pid != p4 and not resolved))
                    for pid, channel, resolved in counts}
        assert counts == expected, "\n".join(f"{n.channel} {n.member}: {n.text.splitlines()[0]}" for n in ha.notes())
        assert len(ha.notes()) == sum(expected.values()), ha.notes()  # nothing else was sent
    finally:
        notes = ha.notes()
        (tmp_path / "notifications.json").write_text(json.dumps(
            [n.__dict__ for n in notes], indent=1, ensure_ascii=False), encoding="utf-8")
        background.shutdown(wait=True, cancel_futures=True)
        ha.stop()

    with capsys.disabled():
        print(f"\nHA pair + 3-member cluster, scrape/evaluation {EVALUATION:g} s, group_wait {GROUP_WAIT:g} s, "
              f"peer timeout {PEER_TIMEOUT:g} s (set-up {setup_seconds:.0f} s, whole test "
              f"{time.monotonic() - started:.0f} s): from the exporter showing the P&L to the notification")
        for what, seconds in latencies.items():
            print(f"  {what:58s} {seconds:5.1f} s  sent by {senders[what]} (position {positions[senders[what]]} "
                  "with all three up)")
        print(f"  the killed member left the survivors' view after {removed_after:.1f} s")
    (tmp_path / "latencies.json").write_text(json.dumps(latencies, indent=1), encoding="utf-8")
