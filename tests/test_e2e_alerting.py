"""End to end on real components: the repo's Prometheus rules and Alertmanager routing deliver the right
notifications, once, to an SMTP sink (email) and an HTTP sink (Slack's webhook), resolve them when the condition
clears, and suppress what must be suppressed. Latency from condition to notification is measured and printed.

Two drivers of the same pipeline:
- ``test_alert_pipeline_with_scripted_metrics``: the exporter's metric contract (docs/metrics.md) served by a
  stub whose exposition the test changes step by step; exact, fast, independent of market data.
- ``test_replayed_day_end_to_end``: the real exporter (its loop, collector and HTTP server) on a replay scenario,
  stepped on a virtual clock so each state is held while the pipeline works; positions driven with the CLI.

Alertmanager runs a copy of alertmanager/alertmanager.yml with only the delivery addresses (sinks, via the same
``*_file`` secret settings) and group_wait/group_interval shortened; routes, repeats and inhibitions are the repo's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from exporter_support import FaultyProvider, Running, make_service
from realstack import (
    MetricsWatcher,
    SmtpSink,
    repo_routing,
    slack_shown,
    start_alertmanager,
    start_http_sink,
    start_metrics_stub,
    start_prometheus,
    start_smtp_sink,
    wait_until,
)
from spreadwatch.config import load_config_file
from spreadwatch.edges.providers.replay import ReplayProvider

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTIFY_TIMEOUT = 30.0  # seconds; expected latency is scrape + evaluation + group_wait, a few seconds


# ------------------------------------------------------------------------------------------------ the stack


class Stack:
    """Sinks, Alertmanager and Prometheus (repo rules, 1 s scrape and evaluation) around one scrape target."""

    def __init__(self, workdir: Path, target: str, prometheus_dir: Path = ROOT / "prometheus"):
        self.smtp = start_smtp_sink()
        self.slack = start_http_sink()
        routing = repo_routing(workdir, self.smtp.smarthost, self.slack.url + "/slack", group_wait="1s",
                               group_interval="2s")
        self.am = start_alertmanager(routing, workdir,
                                     templates_dir=ROOT / "alertmanager" / "templates")
        self.prom = start_prometheus(prometheus_dir, workdir, targets={"spreadwatch": [target]},
                                     alertmanager_urls=[self.am.url])

    def stop(self) -> None:
        for part in (self.prom, self.am, self.smtp, self.slack):
            part.stop()

    # What arrived, as text --------------------------------------------------------------------------------

    def slack_messages(self) -> list[tuple[float, str]]:
        out = []
        for m in self.slack.snapshot():
            for att in m.body.get("attachments", []):
                out.append((m.monotonic, slack_shown(att.get("title", "") + "\n" + att.get("text", ""))))
        return out

    def emails(self) -> list[tuple[float, str]]:
        """Subject, newline, the plain-text part (line endings as "\\n": a quoted-printable part comes with CRLF)."""
        return [(m.monotonic, m.body["Subject"] + "\n" + SmtpSink.text_of(m.body).replace("\r\n", "\n"))
                for m in self.smtp.snapshot()]

    def wait_slack(self, *needles: str, after: float, timeout: float = NOTIFY_TIMEOUT) -> tuple[float, str]:
        return wait_until(lambda: next(((t, s) for t, s in self.slack_messages()
                                        if t >= after and all(n in s for n in needles)), None),
                          timeout, f"a Slack message with {needles}")

    def wait_email(self, *needles: str, after: float, timeout: float = NOTIFY_TIMEOUT) -> tuple[float, str]:
        return wait_until(lambda: next(((t, s) for t, s in self.emails()
                                        if t >= after and all(n in s for n in needles)), None),
                          timeout, f"an email with {needles}")

    def count_slack(self, *needles: str) -> int:
        return sum(all(n in s for n in needles) for _, s in self.slack_messages())

    def count_email(self, *needles: str) -> int:
        return sum(all(n in s for n in needles) for _, s in self.emails())


# ------------------------------------------------------------------------- scripted exporter metrics (stub)


def _series(name: str, value: float, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {value}"


def exposition(state: dict) -> str:
    """Exposition text of the exporter's contract (docs/metrics.md) for a compact state."""
    lines = [
        _series("spreadwatch_build_info", 1, version="test", source="replay"),
        _series("spreadwatch_market_open", state["market_open"]),
        _series("spreadwatch_stale_after_seconds", 180),
        _series("spreadwatch_grid_age_seconds", 3600),
        _series("spreadwatch_portfolio_risk_dollars", state["risk"]),
        _series("spreadwatch_portfolio_max_risk_dollars", 50000),
        _series("spreadwatch_portfolio_positions", len(state["positions"]), status="open"),
        _series("spreadwatch_portfolio_max_positions", 5),
    ]
    for source, age in state["sources"].items():
        lines.append(_series("spreadwatch_source_up", 1 if age <= 180 else 0, source=source))
        lines.append(_series("spreadwatch_source_age_seconds", age, source=source))
    if state["sources"].get("^NDX", 999) <= 180:
        lines.append(_series("spreadwatch_price", 20000, ticker="NDX"))
    if state.get("vix") is not None:
        lines.append(_series("spreadwatch_vix", state["vix"]))
        regime, previous = state["regime"]
        lines.append(_series("spreadwatch_regime_info", 1, regime=regime, previous=previous))
        if previous != "none":
            lines.append(_series("spreadwatch_regime_change_age_seconds", 60))
    for oid, (dte, band, spread, entry, *more) in state["opportunities"].items():
        width, rank = more if more else (100, 1)  # its best width now, its rank in its entry window
        labels = dict(ticker="NDX", id=f"{oid}-{width}", dte=str(dte), band=band, spread_type=spread,
                      flow_mode="with_flow", width=str(width), entry_time_et=entry)
        for name, value in (("in_window", 1), ("blocked_by_risk", 0), ("win_ratio", 0.955), ("roi_ratio", 0.166),
                            ("exit_win_ratio", 0.805), ("exit_win_lower_ratio", 0.741),
                            ("exit_win_upper_ratio", 0.856), ("exit_expected_return_ratio", 0.0133),
                            ("credit_dollars", 1425), ("risk_dollars", 8575), ("rank", 1), ("score", 91.25)):
            lines.append(_series(f"spreadwatch_opportunity_{name}", value, **labels))
        for leg, strike in (("short_put", 19500), ("long_put", 19400), ("short_call", 20500), ("long_call", 20600)):
            lines.append(_series("spreadwatch_opportunity_strike", strike, leg=leg, **labels))
        # The setup as its entry window's notification lists it: labels without the width.
        setup = dict(ticker="NDX", window=entry, setup=oid, dte=str(dte), band=band, spread_type=spread,
                     flow_mode="with_flow")
        lines.append(_series("spreadwatch_entry_setup_rank", rank, **setup))
        local = f"{int(entry[:2]) - 3:02d}{entry[2:]} PT"
        line = (f"{dte}DTE {band} {spread.upper()} {width} wide @ {local} | Win:80.5% managed 95.5% held | "
                f"Credit:$1425 Risk:$8575 | Strikes: SP 19500 LP {19500 - width} SC 20500 LC {20500 + width}")
        lines.append(_series("spreadwatch_entry_setup_info", 1, **{k: setup[k] for k in ("ticker", "window", "setup")},
                             id=labels["id"], width=str(width), window_local=local, line=line))
    for pid, (pnl, credit, sessions, entry_dte) in state["positions"].items():
        labels = dict(position_id=pid, ticker="NDX", spread_type="iron_condor", band="P98")
        for name, value in (("pnl_dollars", pnl), ("credit_dollars", credit), ("pnl_to_credit_ratio", pnl / credit),
                            ("profit_target_dollars", 0.5 * credit), ("stop_loss_dollars", -2.0 * credit),
                            ("sessions_to_expiry", sessions), ("entry_dte", entry_dte), ("time_exit_sessions", 1),
                            ("pnl_age_seconds", 60), ("pnl_max_age_seconds", 7200), ("risk_dollars", 1715)):
            lines.append(_series(f"spreadwatch_position_{name}", value, **labels))
        lines.append(_series("spreadwatch_position_exit_pnl_dollars", pnl, source="logged", **labels))
    return "\n".join(lines) + "\n"


def test_alert_pipeline_with_scripted_metrics(tmp_path, capsys):
    state = {
        "market_open": 1, "sources": {"^NDX": 30, "^VIX": 30}, "vix": 15.5, "regime": ("low", "none"),
        "opportunities": {}, "positions": {}, "risk": 10000,
    }
    stub = start_metrics_stub(exposition(state))
    stack = Stack(tmp_path, stub.address)
    latencies: dict[str, float] = {}

    def change(**updates) -> float:
        state.update(updates)
        stub.set(exposition(state))
        return time.monotonic()

    try:
        stack.prom.wait_for_up("spreadwatch")
        # A few evaluations of the quiet state: only the watchdog fires, and it goes to the null dead-man receiver.
        wait_until(lambda: [a for a in stack.am.alerts() if a["labels"]["alertname"] == "SpreadwatchWatchdog"
                            and a["receivers"][0]["name"] == "deadman"], 20, "the watchdog in Alertmanager")
        time.sleep(2)
        assert stack.slack_messages() == [] and stack.emails() == []

        # 1. VIX 18.5 moves the regime low -> medium; a setup enters its window; a position reaches its profit
        #    target, another its stop.
        t = change(vix=18.5, regime=("medium", "low"),
                   opportunities={"a1b2c3d4": (3, "P98", "iron_condor", "10:30")},
                   positions={"a3f8": (150.0, 285.0, 3, 3), "b7c1": (-600.0, 285.0, 3, 3)})
        got, _ = stack.wait_slack("Regime change: LOW → MEDIUM (VIX 18.5)", after=t)
        latencies["regime change -> Slack"] = got - t
        got, text = stack.wait_slack("[OPPORTUNITY] Found 1 trade opportunity(ies) on NDX, entry window 07:30 PT",
                                     after=t)
        latencies["opportunity -> Slack"] = got - t
        assert ("\n#1: 3DTE P98 IRON_CONDOR 100 wide @ 07:30 PT | Win:80.5% managed 95.5% held | Credit:$1425 "
                "Risk:$8575 | Strikes: SP 19500 LP 19400 SC 20500 LC 20600\n") in text, text
        got, text = stack.wait_email("[OPPORTUNITY] Found 1 trade opportunity(ies) on NDX", after=t)
        latencies["opportunity -> email"] = got - t
        assert "#1: 3DTE P98 IRON_CONDOR 100 wide @ 07:30 PT" in text, text

        # 1b. The setup's best width becomes 50 (another grid row, another opportunity id): the same setup, no
        #     notification. Then a second setup joins the 10:30 ET window: one notification listing both, in rank
        #     order, on each channel.
        change(opportunities={"a1b2c3d4": (3, "P98", "iron_condor", "10:30", 50, 1)})
        time.sleep(6)  # three group intervals: time enough for a wrong notification to arrive
        assert stack.count_slack("[OPPORTUNITY]") == 1 and stack.count_email("[OPPORTUNITY]") == 1
        gained = change(opportunities={"a1b2c3d4": (3, "P98", "iron_condor", "10:30", 50, 1),
                                       "c9d0e1f2": (1, "P99", "iron_condor", "10:30", 100, 2)})
        for wait in (stack.wait_slack, stack.wait_email):
            _, text = wait("Found 2 trade opportunity(ies) on NDX, entry window 07:30 PT", after=gained)
            assert ("\n#1: 3DTE P98 IRON_CONDOR 50 wide @ 07:30 PT | Win:80.5% managed 95.5% held | Credit:$1425 "
                    "Risk:$8575 | Strikes: SP 19500 LP 19450 SC 20500 LC 20550\n#2: 1DTE P99 IRON_CONDOR 100 wide "
                    "@ 07:30 PT") in text, text
        assert "http://localhost:3000/d/spreadwatch?var-ticker=NDX" in text
        got, _ = stack.wait_slack("EXIT SIGNAL - Position a3f8 | Reason: Profit target hit | P&L: $150.00 (+52.6%)", after=t)
        latencies["profit target -> Slack"] = got - t
        got, text = stack.wait_email("EXIT SIGNAL - Position a3f8 | Reason: Profit target hit", after=t)
        latencies["profit target -> email"] = got - t
        assert "RUNBOOK.md#spreadwatchprofittarget" in text
        got, _ = stack.wait_slack("EXIT SIGNAL - Position b7c1 | Reason: Stop loss hit | P&L: $-600.00", after=t)
        latencies["stop loss -> Slack"] = got - t
        got, _ = stack.wait_email("EXIT SIGNAL - Position b7c1 | Reason: Stop loss hit", after=t)
        latencies["stop loss -> email"] = got - t

        # 2. The trader closes a3f8: its alert resolves on both channels.
        t = change(positions={"b7c1": (-600.0, 285.0, 3, 3)})
        got, _ = stack.wait_slack("[RESOLVED]", "Position a3f8", after=t)
        latencies["position closed -> resolved on Slack"] = got - t
        stack.wait_email("[RESOLVED]", "Position a3f8", after=t)

        # 3. Risk over the limit: Slack and email. A setup entering its window now is inhibited.
        t = change(risk=55000)
        got, _ = stack.wait_slack("RISK LIMIT BREACH - Total Capital at Risk: $55000 exceeds $50000", after=t)
        latencies["risk breach -> Slack"] = got - t
        stack.wait_email("RISK LIMIT BREACH", after=t)
        change(opportunities={"a1b2c3d4": (3, "P98", "iron_condor", "10:30", 50, 1),
                              "c9d0e1f2": (1, "P99", "iron_condor", "10:30", 100, 2),
                              "e5f6a7b8": (1, "P97", "put_spread", "10:45")})
        suppressed = wait_until(lambda: [a for a in stack.am.alerts() if a["labels"].get("setup") == "e5f6a7b8"
                                         and a["status"]["inhibitedBy"]], 20, "the new opportunity, inhibited")
        assert suppressed[0]["status"]["state"] == "suppressed"
        time.sleep(4)  # two group intervals: time enough for a wrong notification to arrive
        assert stack.count_slack("1DTE P97 PUT_SPREAD") == 0

        # 4. Back under the limit: the breach resolves, and the held-back setup is announced.
        t = change(risk=45000)
        got, _ = stack.wait_slack("[RESOLVED]", "RISK LIMIT BREACH", after=t)
        latencies["risk back under -> resolved on Slack"] = got - t
        stack.wait_slack("#1: 1DTE P97 PUT_SPREAD 100 wide @ 07:45 PT", after=t)

        # 5. The VIX feed fails: market data stale (email, after its 30 s for:). The stop-loss alert of b7c1 is
        #    held, not resolved; a stop reached now (c2d3) does not start on stale data.
        t = change(sources={"^NDX": 30, "^VIX": 400},
                   positions={"b7c1": (-600.0, 285.0, 3, 3), "c2d3": (-700.0, 285.0, 3, 3)})
        got, text = stack.wait_email("Market data stale: ^VIX", after=t, timeout=70)
        latencies["data stale -> email (for: 30s)"] = got - t
        assert "Opportunity and exit alerts are held back" in text
        time.sleep(4)
        assert stack.count_slack("Position c2d3") == 0 and stack.count_email("Position c2d3") == 0
        assert stack.count_slack("[RESOLVED]", "Position b7c1") == 0

        # Each notification arrived once; nothing went where it must not.
        assert stack.count_slack("Regime change: LOW → MEDIUM") == 1
        # Opportunities: the 10:30 window once, again when it gained a setup; the 10:45 window once.
        assert stack.count_slack("3DTE P98 IRON_CONDOR") == 2 and stack.count_email("3DTE P98 IRON_CONDOR") == 2
        assert stack.count_slack("1DTE P99 IRON_CONDOR") == 1 and stack.count_email("1DTE P99 IRON_CONDOR") == 1
        assert stack.count_slack("1DTE P97 PUT_SPREAD") == 1 and stack.count_email("1DTE P97 PUT_SPREAD") == 1
        assert stack.count_slack("[OPPORTUNITY]") == 3 and stack.count_email("[OPPORTUNITY]") == 3
        assert stack.count_slack("Position a3f8") == 2  # firing, resolved
        assert stack.count_email("Position a3f8") == 2
        assert stack.count_slack("Position b7c1") == 1 and stack.count_email("Position b7c1") == 1
        assert stack.count_slack("RISK LIMIT BREACH") == 2 and stack.count_email("RISK LIMIT BREACH") == 2
        assert stack.count_email("Regime change") == 0
        assert stack.count_slack("Market data stale") == 0 and stack.count_email("Market data stale") == 1
        assert stack.count_slack("Watchdog") == 0 and stack.count_email("Watchdog") == 0
    finally:
        stack.stop()
        stub.stop()

    with capsys.disabled():
        print("\nlatency from condition (metrics changed) to notification, scrape 1 s, evaluation 1 s, group_wait 1 s:")
        for what, seconds in latencies.items():
            print(f"  {what:42s} {seconds:6.1f} s")
    # scrape + evaluation + group_wait + delivery: a few seconds; the 30 s for: only on the stale-data alert.
    for what, seconds in latencies.items():
        assert seconds < (45 if "stale" in what else 10), (what, seconds)
    (tmp_path / "latencies.json").write_text(json.dumps(latencies, indent=1), encoding="utf-8")


# ------------------------------------------------------------------------- the real exporter on a replayed day

# The scenario: the SYNTHETIC NDX replay day (2026-11-24; the VIX climbs through 16.5 and the regime turns
# low -> medium at 10:39 ET) cut at 11:30 ET, so the data goes stale at 11:33 ET (stale_after 180 s); a one-row grid
# whose setup (NDX 1DTE P98 put spread, with flow, entry 10:45 ET) passes in both regimes and is in window
# 10:30-11:00 ET. The exporter (its loop, collector and HTTP server, in this process) replays from 10:25 ET on a
# virtual clock that moves only when the test steps it, a market cycle (60 s) at a time: it holds each state while
# Prometheus scrapes it and the notifications arrive, however long that takes on this machine.
#
# Clocks: the CLI runs at the exporter's instant (SPREADWATCH_NOW = the replay clock's now), so entry and P&L times
# are on the replayed day. Positions are added without --expiry: dte 3 from 11-24 expires 11-30 (Thanksgiving is no
# session), 3 sessions after the replayed day, so no time-exit or expiry-day alert (asserted below, so a change in
# that arithmetic fails here rather than as a mysterious extra notification).
REPLAY_START = "2026-11-24T15:25:00Z"
REPLAY_CUT = "2026-11-24T16:30:00Z"
STALE_FROM = "2026-11-24T16:33:00Z"  # the last bar + stale_after_seconds (180)
GRID = """\
ticker,dte,band,spread_type,flow_mode,spread_width,entry_time_et,regime,trend,n_trades,n_wins,win_rate,avg_credit,avg_max_risk,roi,avg_pnl,sharpe,max_drawdown,trade_score,exit_win_rate,exit_avg_pnl,exit_sharpe,exit_trade_score,exit_win_rate_low,exit_win_rate_high,n_effective,band_lower_move,band_upper_move,credit_source,low_sample,data_start,data_end
NDX,1,P98,put_spread,with_flow,50,10:45,all,all,60,57,0.95,1200,3800,0.3158,95,0.45,-2500,80,0.93,80,0.4,78,0.841,0.971,60,-0.021,0.019,model,false,2025-06-01,2026-11-20
"""
CONFIG = """\
risk:
  max_total_risk: 5000.0
  max_positions: 5
"""


def write_replay_scenario(path: Path) -> None:
    """The NDX replay day with the replayed day's bars after REPLAY_CUT removed (history kept)."""
    from exporter_support import NDX_REPLAY

    day = REPLAY_CUT[:11]
    with open(NDX_REPLAY, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as out:
        for line in src:
            stamp = line.split(",", 1)[0]
            if stamp.startswith(day) and stamp > REPLAY_CUT:
                continue
            out.write(line)


STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"  # an alert line's instant (written in the display zone)


def logged_headline(text: str, prefix: str, subject: str) -> bool:
    """The message starts with the exit's headline, which names its P&L as the logged one and its age (the exit
    P&L's source: a P&L logged moments ago is the freshest)."""
    return re.match(rf"{re.escape(prefix + subject)} \(logged [0-9hms ]+ ago\)\n", text) is not None


def logged_age(text: str) -> str:
    match = re.search(r"\(logged ([0-9hms ]+) ago\)", text)
    return match[1] if match else "?"


def _et(seconds: float | None) -> str:
    """An epoch time as HH:MM:SS ET (the replayed day's clock)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, ZoneInfo("America/New_York")).strftime("%H:%M:%S ET")


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_replayed_day_end_to_end(tmp_path, capsys):
    replay, grid, cfg, db = tmp_path / "day.csv", tmp_path / "grid.csv", tmp_path / "cfg.yml", tmp_path / "book.db"
    write_replay_scenario(replay)
    grid.write_text(GRID, encoding="utf-8")
    cfg.write_text(CONFIG, encoding="utf-8")
    service = make_service(tmp_path, FaultyProvider(ReplayProvider(replay)), config=load_config_file(cfg), db=db,
                           grid=grid, start=datetime.fromisoformat(REPLAY_START.replace("Z", "+00:00")))
    stack = running = watcher = None
    # what -> (seconds from the exporter showing it, seconds from running the CLI command or None)
    latencies: dict[str, tuple[float, float | None]] = {}
    arrived_on_replay_clock: dict[str, str] = {}  # what -> the exporter's clock (ET) when it arrived
    cycle = service.intervals["positions"]  # a position cycle, on the replay clock

    def cli(*args: str) -> tuple[float, str]:
        """Runs ``spreadwatch ... --db BOOK`` at the exporter's instant; returns when it was started (monotonic)
        and its stdout."""
        started = time.monotonic()
        env = {**os.environ, "SPREADWATCH_NOW": service.clock.now().isoformat()}
        result = subprocess.run([sys.executable, "-m", "spreadwatch", "--config", str(cfg), *args, "--db", str(db)],
                                capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
        assert result.returncode == 0, f"spreadwatch {' '.join(args)}: {result.stdout}{result.stderr}"
        return started, result.stdout

    def add_position(credit: float, risk: float) -> tuple[float, str]:
        """A 1-lot put spread whose strikes' risk is `risk` (width = (risk + credit) / 100)."""
        before = {p["id"] for p in json.loads(cli("positions", "list", "--json")[1])}
        long_put = 19900 - (risk + credit) / 100
        started, out = cli("positions", "add", "--ticker", "NDX", "--dte", "3", "--band", "P98", "--spread",
                           "put_spread", "--flow-mode", "with_flow", "--contracts", "1", "--credit", str(credit),
                           "--risk", str(risk), "--short-put", "19900", "--long-put", f"{long_put:.2f}", "--json")
        new = json.loads(out)["id"]
        assert new not in before
        return started, new

    def position(pid: str, metric: str = "pnl_dollars") -> str:
        return rf'^spreadwatch_position_{metric}\{{[^}}]*position_id="{pid}"[^}}]*\}} '

    def record(what: str, received: float, shown: float, commanded: float | None = None) -> None:
        latencies[what] = (received - shown, None if commanded is None else received - commanded)
        arrived_on_replay_clock[what] = _et(replay_now())

    def replay_now() -> float:
        return service.clock.now().timestamp()

    def step_until(pattern: str, within: float, after: float = 0.0, shown: bool = True) -> float:
        """Step the exporter until a sample line matches ``pattern`` (none does, with ``shown=False``), at most
        ``within`` replay seconds; the monotonic time the watcher first saw it so (at or after ``after``)."""
        regex = re.compile(pattern)
        running.until(lambda: any(map(regex.search, scrape_lines(running.url))) == shown, within=within)
        return watcher.when(pattern, after=after) if shown else watcher.gone(pattern, after=after)

    try:
        # The pipeline first; the exporter holds its first cycle (10:25 ET) until Prometheus scrapes it.
        with Running(service) as running:
            stack = Stack(tmp_path, urlparse(running.url).netloc)
            watcher = MetricsWatcher(running.url + "/metrics")
            stack.prom.wait_for_up("spreadwatch")
            # 1. An opportunity enters its window (10:30 ET): one Slack message, with the strikes the exporter suggested.
            shown = step_until(r'^spreadwatch_opportunity_in_window\{.*\} 1\.0$', within=3600)
            got, text = stack.wait_slack("[OPPORTUNITY] Found 1 trade opportunity(ies) on NDX", after=0, timeout=60)
            record("opportunity in window -> Slack", got, shown)
            title, body = text.split("\n", 1)
            assert title == "[OPPORTUNITY] Found 1 trade opportunity(ies) on NDX, entry window 07:45 PT", text
            line = re.search(r"^(#1: 1DTE P98 PUT_SPREAD 50 wide @ 07:45 PT \| Win:93\.0% managed 95\.0% held \| "
                             r"Credit:\$1200 Risk:\$3800 \| Strikes: SP (\d+) LP (\d+))\n", body)
            assert line, body
            strikes = {leg: watcher.values(rf'^spreadwatch_opportunity_strike\{{[^}}]*leg="{leg}"')
                       for leg in ("short_put", "long_put")}
            assert float(line[2]) in strikes["short_put"] and float(line[3]) in strikes["long_put"], (line[0], strikes)
            assert float(line[2]) - float(line[3]) == 50  # the grid's width
            assert "<http://localhost:3000/d/spreadwatch?var-ticker=NDX|Open the spreadwatch dashboard>" in body

            # 2. The regime turns medium (10:39 ET): Slack, with the VIX the exporter showed past the boundary + buffer.
            shown = step_until(r'^spreadwatch_regime_info\{(?=.*previous="low")(?=.*regime="medium").*\} 1\.0$',
                               within=3600)
            got, text = stack.wait_slack("Regime change: LOW → MEDIUM", after=0, timeout=60)
            record("regime change -> Slack", got, shown)
            vix = re.fullmatch(r"\[WARNING\] Regime change: LOW → MEDIUM \(VIX (\d+\.\d)\)", text.split("\n", 1)[0])
            assert vix, text
            shown_vix = {round(v, 1) for v in watcher.values(r"^spreadwatch_vix ") if v >= 16.5}
            assert float(vix[1]) in shown_vix, (vix[0], sorted(shown_vix))

            # 3. Positions logged with the CLI: A updated to its profit target, B to its stop. Exact texts on both
            #    channels; the data is fresh (the exits are not gated off) and the expiry is not near.
            _, a = add_position(285, 1715)
            _, b = add_position(285, 1715)
            subject_a = f"EXIT SIGNAL - Position {a} | Reason: Profit target hit | P&L: $150.00 (+52.6%)"
            subject_b = f"EXIT SIGNAL - Position {b} | Reason: Stop loss hit | P&L: $-600.00 (-210.5%)"
            t_a, out = cli("positions", "update", a, "--pnl", "150")
            assert subject_a in out, out  # the CLI and the alert say the same
            shown_a = step_until(position(a) + r"150\.0$", within=cycle)  # within one position cycle
            t_b, out = cli("positions", "update", b, "--pnl", "-600")
            assert subject_b in out, out
            shown_b = step_until(position(b) + r"-600\.0$", within=cycle)
            assert replay_now() < _epoch(STALE_FROM) - 5 * 60, f"too late in the replayed day: {_et(replay_now())}"
            for pid in (a, b):
                sessions = watcher.values(position(pid, "sessions_to_expiry"))
                assert sessions and min(sessions) > 1, (pid, sessions)  # above time_exit_dte (1): no time exit

            shown = shown_a
            got, text = stack.wait_slack(subject_a, after=0)
            record("profit target -> Slack", got, shown, t_a)
            assert logged_headline(text, "[EXIT] ", subject_a), text
            assert (f"NDX put_spread P98 (position {a}) has P&L $150.00 (logged {logged_age(text)} ago); its profit "
                    f"target is $142.50 (credit $285.00)."
                    in text), text
            assert "RUNBOOK.md#spreadwatchprofittarget|Runbook: SpreadwatchProfitTarget>" in text
            got, text = stack.wait_email(subject_a, after=0)
            record("profit target -> email", got, shown, t_a)
            assert logged_headline(text, "[spreadwatch] [EXIT] ", subject_a), text
            assert f"Close it in your broker, then `spreadwatch positions close {a} --pnl <P&L>" in text

            shown = shown_b
            got, text = stack.wait_slack(subject_b, after=0)
            record("stop loss -> Slack", got, shown, t_b)
            assert logged_headline(text, "[EXIT] ", subject_b), text
            assert (f"(position {b}) has P&L $-600.00 (logged {logged_age(text)} ago); its stop is $-570.00 "
                    f"(credit $285.00).") in text, text
            got, text = stack.wait_email(subject_b, after=0)
            record("stop loss -> email", got, shown, t_b)
            assert logged_headline(text, "[spreadwatch] [EXIT] ", subject_b), text

            # 4. Closing A: its series vanish and its alert resolves on both channels.
            t, _ = cli("positions", "close", a, "--pnl", "150", "--note", "Profit target")
            shown = step_until(position(a), within=cycle, after=t, shown=False)
            got, text = stack.wait_slack("[RESOLVED]", f"Position {a}", after=t)
            record("position closed -> resolved on Slack", got, shown, t)
            assert logged_headline(text, "[RESOLVED] [EXIT] ", subject_a), text
            # A resolved exit never claims the position was closed: the session's end or an exporter restart also
            # resolve it.
            # Its line gives when it started firing and when it resolved, in the display zone (Pacific).
            assert re.search(rf"^\[{STAMP} PT\] \[RESOLVED\] .* \(no longer signalled since {STAMP} PT: the position "
                             r"was closed or its P&L moved back, or the session ended or the exporter stopped "
                             r"reporting it; check `spreadwatch positions list`\)$", text, re.M), text
            got, text = stack.wait_email("[RESOLVED]", f"Position {a}", after=t)
            record("position closed -> resolved by email", got, shown, t)
            assert logged_headline(text, "[spreadwatch] [RESOLVED] [EXIT] ", subject_a), text
            assert "(no longer signalled since " in text, text

            # 5. A third position pushes the capital at risk over the $5,000 limit (B $1,715 + C $4,000); closing it
            #    brings the book back under.
            t, c = add_position(400, 4000)
            shown = step_until(r"^spreadwatch_portfolio_risk_dollars 5715\.0$", within=cycle, after=t)
            subject_risk = "RISK LIMIT BREACH - Total Capital at Risk: $5715 exceeds $5000"
            got, text = stack.wait_slack(subject_risk, after=t)
            record("risk breach -> Slack", got, shown, t)
            assert text.startswith(f"[ERROR] {subject_risk}\n"), text
            got, text = stack.wait_email(subject_risk, after=t)
            record("risk breach -> email", got, shown, t)
            assert text.startswith(f"[spreadwatch] [ERROR] {subject_risk}\n"), text
            t, _ = cli("positions", "close", c, "--pnl", "0")
            shown = step_until(r"^spreadwatch_portfolio_risk_dollars 1715\.0$", within=cycle, after=t)
            got, text = stack.wait_slack("[RESOLVED]", subject_risk, after=t)
            record("risk back under -> resolved on Slack", got, shown, t)
            assert text.startswith(f"[RESOLVED] [ERROR] {subject_risk}\n"), text
            assert re.search(rf"^\[{STAMP} PT\] \[RESOLVED\] .* \(cleared {STAMP} PT\)$", text, re.M), text
            assert "no longer signalled" not in text, text
            got, _ = stack.wait_email("[RESOLVED]", subject_risk, after=t)
            record("risk back under -> resolved by email", got, shown, t)

            # 6. The replay file ends at 11:30 ET: every source is stale from 11:33 ET (replay clock). One email for
            #    the outage, listing every source, after the rule's 30 s for:.
            stale = r'^spreadwatch_source_age_seconds\{.*\} (18[1-9]|19\d|[2-9]\d\d|\d{4,})(\.\d+)?$'
            shown = step_until(stale, within=2 * 3600)
            sources = sorted(re.search(r'source="([^"]+)"', line)[1] for line in watcher.polls()[-1][1]
                             if line.startswith("spreadwatch_source_up{"))
            assert len(sources) == 4, sources  # the replay's NDX, VIX, VXN and QQQ
            got, text = stack.wait_email("SpreadwatchMarketDataStale", after=0, timeout=90)
            record("data stale -> email (for: 30s)", got, shown)
            assert text.startswith(f"[spreadwatch] [CRITICAL] SpreadwatchMarketDataStale: {len(sources)} firing, "
                                   "0 resolved\n"), text
            for source in sources:
                assert re.search(rf"\] \[CRITICAL\] Market data stale: {re.escape(source)} last valid value "
                                 rf"(\d+m )?\d+s ago\n", text), (source, text)
            assert text.count("Opportunity and exit alerts are held back until it is fresh again.") == len(sources)

            # A stop reached now does not start (stale data gates the rule): D is exported at -900 (stop -570) and
            # never becomes an alert, while B's stop is held firing (not resolved) and inhibited in Alertmanager.
            t, d = add_position(285, 500)
            cli("positions", "update", d, "--pnl", "-900")
            step_until(position(d) + r"-900\.0$", within=cycle, after=t)
            watch_until = time.monotonic() + 6  # six evaluations, three group intervals
            while time.monotonic() < watch_until:
                held = [x for x in stack.prom.alerts() if x["labels"].get("position_id") in (b, d)]
                assert [(x["labels"]["alertname"], x["labels"]["position_id"], x["state"]) for x in held] == [
                    ("SpreadwatchStopLoss", b, "firing")], held
                time.sleep(0.5)
            in_am = [x for x in stack.am.alerts() if x["labels"].get("position_id") == b]
            assert in_am and in_am[0]["status"]["state"] == "suppressed" and in_am[0]["status"]["inhibitedBy"], in_am
            assert stack.count_slack(f"Position {d}") == 0 and stack.count_email(f"Position {d}") == 0
            assert stack.count_slack("[RESOLVED]", f"Position {b}") == 0
            assert stack.count_email("[RESOLVED]", f"Position {b}") == 0

            # Everything arrived once, where it belongs; nothing else arrived.
            assert stack.count_slack("[OPPORTUNITY]") == 1 and stack.count_email("[OPPORTUNITY]") == 1
            assert stack.count_slack("Regime change: LOW → MEDIUM") == 1
            assert stack.count_slack(f"Position {a}") == 2 and stack.count_email(f"Position {a}") == 2
            assert stack.count_slack(f"Position {b}") == 1 and stack.count_email(f"Position {b}") == 1
            assert stack.count_slack("RISK LIMIT BREACH") == 2 and stack.count_email("RISK LIMIT BREACH") == 2
            assert stack.count_email("SpreadwatchMarketDataStale") == 1 and stack.count_slack("Market data stale") == 0
            assert stack.count_email("Regime change") == 0
            assert len(stack.slack_messages()) == 1 + 1 + 2 + 1 + 2, stack.slack_messages()
            assert len(stack.emails()) == 1 + 2 + 1 + 2 + 1, stack.emails()
    finally:
        if stack is not None:
            notifications = [{"channel": "slack", "t": t, "text": s} for t, s in stack.slack_messages()]
            notifications += [{"channel": "email", "t": t, "text": s} for t, s in stack.emails()]
            (tmp_path / "notifications.json").write_text(json.dumps(sorted(notifications, key=lambda n: n["t"]),
                                                                    indent=1, ensure_ascii=False), encoding="utf-8")
        if watcher is not None:
            watcher.stop()
        if stack is not None:
            stack.stop()

    with capsys.disabled():
        print("\nreplayed day on a virtual clock, scrape/evaluation 1 s, group_wait 1 s: latency to notification")
        print(f"  {'':42s} {'from exporter':>14s} {'from CLI':>10s}   {'arrived (replay clock)'}")
        for what, (from_shown, from_cli) in latencies.items():
            cli_text = "-" if from_cli is None else f"{from_cli:.1f} s"
            print(f"  {what:42s} {from_shown:12.1f} s {cli_text:>10s}   {arrived_on_replay_clock[what]}")
    for what, (from_shown, from_cli) in latencies.items():
        bound = 45 if "stale" in what else 10
        assert from_shown < bound and (from_cli is None or from_cli < bound), (what, from_shown, from_cli)
    (tmp_path / "latencies.json").write_text(json.dumps(latencies, indent=1), encoding="utf-8")


def scrape_lines(url: str) -> list[str]:
    import requests

    return [line for line in requests.get(url + "/metrics", timeout=10).text.splitlines()
            if line and not line.startswith("#")]


# ------------------------------------------------------------------- opportunity notifications, the bundled day

# The bundled replay day (SYNTHETIC SPX, 2019-01-02) with the bundled grid, as `./run.sh` runs it, from its default
# start (a few minutes before the first entry window) on a virtual clock. The grid's only entry time is 09:30 ET,
# so the session has one entry window (the open to 09:45 ET): the test runs until the first scan after it lists
# nothing, and no later instant of the session can list a setup (a setup is listed only in its window). Time is compressed by one factor for the
# whole pipeline: each replayed minute is held PACE wall seconds (Prometheus scrapes and evaluates every second),
# Alertmanager's group_interval of 1 m is 2 s, and the rule's keep_firing_for of 10 m is 10 x PACE, so a setup that
# one scan drops is held exactly as long, in replayed minutes, as in production.
PACE = 1.5  # wall seconds per replayed minute: a scrape and an evaluation (1 s each) see every state


def _compressed_rules(workdir: Path) -> Path:
    """A copy of prometheus/ whose opportunity rule's keep_firing_for is 10 replayed minutes at PACE."""
    import shutil

    target = workdir / "prometheus-src"
    shutil.copytree(ROOT / "prometheus", target)
    rules = target / "rules" / "spreadwatch-opportunities.yml"
    text = rules.read_text(encoding="utf-8")
    assert "keep_firing_for: 10m" in text
    rules.write_text(text.replace("keep_firing_for: 10m", f"keep_firing_for: {10 * PACE:g}s"), encoding="utf-8")
    return target


def _setups_of(text: str) -> frozenset[str]:
    """The setups a notification lists, without their width: `1DTE P98 IRON_CONDOR @ 06:30 PT`."""
    found = re.findall(r"#\d+: (\d+DTE \S+ \S+) [\d.]+ wide (@ \d\d:\d\d \S+)", text)
    return frozenset(f"{setup} {at}" for setup, at in found)


def test_bundled_day_sends_one_opportunity_notification_per_window_and_gain(tmp_path, capsys):
    from spreadwatch.app.runner import default_replay_start
    from spreadwatch.config import Config, bundled_path
    from spreadwatch.edges.calendar import MarketCalendar

    config = Config()
    provider = ReplayProvider(bundled_path("replay_sample.csv"), bundled=True)
    grid = bundled_path("grid_spx.csv")
    from spreadwatch.edges.gridfile import load_grid

    assert set(load_grid(grid).frame["entry_time_et"]) == {"09:30"}  # one entry window in the session
    start = default_replay_start(provider, MarketCalendar.of(config), config)
    service = make_service(tmp_path, FaultyProvider(provider), config=config, tickers=("SPX",), grid=grid,
                           start=start)
    stack = None
    try:
        with Running(service) as running:
            stack = Stack(tmp_path, urlparse(running.url).netloc, prometheus_dir=_compressed_rules(tmp_path))
            stack.prom.wait_for_up("spreadwatch")
            # The window ends 09:45 ET; the first scan after it (within a scan interval) lists nothing.
            window_end = start.replace(hour=14, minute=45)
            window_over = window_end + timedelta(seconds=service.intervals["scan"] + 60)
            listed: set[str] = set()
            while service.clock.now() <= window_over:
                held_from = time.monotonic()
                running.step()
                now = service.clock.now()
                listed |= {w.setup for w in service.snapshot.window_setups}
                if now > window_end and not service.snapshot.window_setups:
                    continue  # nothing listed any more: nothing for Prometheus to see, no need to hold it
                scraped = f"spreadwatch_clock_timestamp_seconds >= {now.timestamp()}"
                wait_until(lambda q=scraped: stack.prom.query(q), 30, f"Prometheus scraping {now:%H:%M}")
                time.sleep(max(0.0, PACE - (time.monotonic() - held_from)))
            assert service.snapshot.window_setups == (), service.clock.now()  # the window is over
            time.sleep(4 * PACE)  # two group intervals: time enough for a late notification to arrive

            slack = [text for _, text in stack.slack_messages() if text.startswith("[OPPORTUNITY]")]
            email = [text for _, text in stack.emails() if text.startswith("[spreadwatch] [OPPORTUNITY]")]
    finally:
        if stack is not None:
            notifications = [{"channel": "slack", "text": s} for _, s in stack.slack_messages()]
            notifications += [{"channel": "email", "text": s} for _, s in stack.emails()]
            (tmp_path / "notifications.json").write_text(json.dumps(notifications, indent=1, ensure_ascii=False),
                                                         encoding="utf-8")
            stack.stop()

    with capsys.disabled():
        print(f"\nbundled day, {start:%H:%M} UTC past its entry window: opportunity notifications Slack {len(slack)}, "
              f"email {len(email)}; setups listed by the exporter {len(listed)}")
    assert listed, "the bundled day lists no setup: nothing was tested"
    for channel, texts in (("slack", slack), ("email", email)):
        assert 1 <= len(texts) <= 6, (channel, texts)
        sets = [_setups_of(text) for text in texts]
        assert all(sets), (channel, texts)
        # Each later notification lists a setup the one before it did not: none repeats a list with new widths.
        for before, after in zip(sets, sets[1:], strict=False):
            assert not after <= before, (channel, before, after)
        assert len(set(sets)) == len(sets), (channel, sets)
    first = slack[0]
    title, body = first.split("\n", 1)
    assert re.fullmatch(r"\[OPPORTUNITY\] Found \d trade opportunity\(ies\) on SPX, entry window 06:30 PT", title)
    assert body.startswith("#1: 1DTE "), body
    assert re.search(r"#1: \d+DTE P\d+ [A-Z_]+ \d+ wide @ 06:30 PT \| Win:\d+\.\d% managed \d+\.\d% held \| "
                     r"Credit:\$\d+ Risk:\$\d+ \| Strikes: SP \d+ LP \d+", body), body
    assert " UTC" not in first, first  # every time in it is in the display zone
    assert len(slack) == len(email)
