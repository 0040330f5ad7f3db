"""End to end on real components: the repo's Prometheus rules and Alertmanager routing deliver the right
notifications, once, to an SMTP sink (email) and an HTTP sink (Slack's webhook), resolve them when the condition
clears, and suppress what must be suppressed. Latency from condition to notification is measured and printed.

Two drivers of the same pipeline:
- ``test_alert_pipeline_with_scripted_metrics``: the exporter's metric contract (docs/metrics.md) served by a
  stub whose exposition the test changes step by step; exact, fast, independent of market data.
- ``test_replayed_day_end_to_end``: the real exporter (``spreadwatch run``) on a replay scenario, positions driven
  with the CLI.

Alertmanager runs a copy of alertmanager/alertmanager.yml with only the delivery addresses (sinks, via the same
``*_file`` secret settings) and group_wait/group_interval shortened; routes, repeats and inhibitions are the repo's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from realstack import (
    SmtpSink,
    start_alertmanager,
    start_http_sink,
    start_metrics_stub,
    start_prometheus,
    start_smtp_sink,
    wait_until,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTIFY_TIMEOUT = 30.0  # seconds; expected latency is scrape + evaluation + group_wait, a few seconds


# ------------------------------------------------------------------------------------------------ the stack


def routing_for_sinks(workdir: Path, smtp: SmtpSink, slack_url: str) -> dict:
    """The repo's routing with the sinks as destinations (through *_file secrets) and short group timers."""
    (workdir / "secrets").mkdir(exist_ok=True)
    (workdir / "secrets" / "slack_webhook_url").write_text(slack_url + "\n", encoding="utf-8")
    (workdir / "secrets" / "smtp_password").write_text("not-used-by-the-sink\n", encoding="utf-8")
    config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    config["global"].update(
        smtp_smarthost=smtp.smarthost,
        smtp_require_tls=False,
        slack_api_url_file=str(workdir / "secrets" / "slack_webhook_url"),
        smtp_auth_password_file=str(workdir / "secrets" / "smtp_password"),
    )

    def shorten(route: dict) -> None:
        route["group_wait"] = "1s"
        route["group_interval"] = "2s"
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    return config




class Stack:
    """Sinks, Alertmanager and Prometheus (repo rules, 1 s scrape and evaluation) around one scrape target."""

    def __init__(self, workdir: Path, target: str):
        self.smtp = start_smtp_sink()
        self.slack = start_http_sink()
        self.am = start_alertmanager(routing_for_sinks(workdir, self.smtp, self.slack.url + "/slack"), workdir,
                                     templates_dir=ROOT / "alertmanager" / "templates")
        self.prom = start_prometheus(ROOT / "prometheus", workdir, targets={"spreadwatch": [target]},
                                     alertmanager_urls=[self.am.url])

    def stop(self) -> None:
        for part in (self.prom, self.am, self.smtp, self.slack):
            part.stop()

    # What arrived, as text --------------------------------------------------------------------------------

    def slack_messages(self) -> list[tuple[float, str]]:
        out = []
        for m in self.slack.snapshot():
            for att in m.body.get("attachments", []):
                out.append((m.monotonic, att.get("title", "") + "\n" + att.get("text", "")))
        return out

    def emails(self) -> list[tuple[float, str]]:
        return [(m.monotonic, m.body["Subject"] + "\n" + SmtpSink.text_of(m.body)) for m in self.smtp.snapshot()]

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
    for oid, (dte, band, spread, entry) in state["opportunities"].items():
        labels = dict(ticker="NDX", id=oid, dte=str(dte), band=band, spread_type=spread, flow_mode="with_flow",
                      width="100", entry_time_et=entry)
        for name, value in (("in_window", 1), ("blocked_by_risk", 0), ("win_ratio", 0.955), ("roi_ratio", 0.166),
                            ("credit_dollars", 1425), ("risk_dollars", 8575), ("rank", 1), ("score", 91.25)):
            lines.append(_series(f"spreadwatch_opportunity_{name}", value, **labels))
        for leg, strike in (("short_put", 19500), ("long_put", 19400), ("short_call", 20500), ("long_call", 20600)):
            lines.append(_series("spreadwatch_opportunity_strike", strike, leg=leg, **labels))
    for pid, (pnl, credit, sessions, entry_dte) in state["positions"].items():
        labels = dict(position_id=pid, ticker="NDX", spread_type="iron_condor", band="P98")
        for name, value in (("pnl_dollars", pnl), ("credit_dollars", credit), ("pnl_to_credit_ratio", pnl / credit),
                            ("profit_target_dollars", 0.5 * credit), ("stop_loss_dollars", -2.0 * credit),
                            ("sessions_to_expiry", sessions), ("entry_dte", entry_dte), ("time_exit_sessions", 1),
                            ("pnl_age_seconds", 60), ("pnl_max_age_seconds", 7200), ("risk_dollars", 1715)):
            lines.append(_series(f"spreadwatch_position_{name}", value, **labels))
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
        got, text = stack.wait_slack("[OPPORTUNITY] Found 1 trade opportunity(ies) on NDX", after=t)
        latencies["opportunity -> Slack"] = got - t
        assert ("NDX 3DTE P98 IRON_CONDOR @ 10:30 ET | Win:95.5% ROI:16.6% | Credit:$1425 Risk:$8575 | "
                "Strikes: SP 19500 LP 19400 SC 20500 LC 20600") in text
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
        change(opportunities={"a1b2c3d4": (3, "P98", "iron_condor", "10:30"),
                              "e5f6a7b8": (1, "P97", "put_spread", "10:45")})
        suppressed = wait_until(lambda: [a for a in stack.am.alerts() if a["labels"].get("id") == "e5f6a7b8"
                                         and a["status"]["inhibitedBy"]], 20, "the new opportunity, inhibited")
        assert suppressed[0]["status"]["state"] == "suppressed"
        time.sleep(4)  # two group intervals: time enough for a wrong notification to arrive
        assert stack.count_slack("1DTE P97 PUT_SPREAD") == 0

        # 4. Back under the limit: the breach resolves, and the held-back setup is announced.
        t = change(risk=45000)
        got, _ = stack.wait_slack("[RESOLVED]", "RISK LIMIT BREACH", after=t)
        latencies["risk back under -> resolved on Slack"] = got - t
        stack.wait_slack("NDX 1DTE P97 PUT_SPREAD @ 10:45 ET", after=t)

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
        assert stack.count_slack("NDX 3DTE P98 IRON_CONDOR") == 1
        assert stack.count_slack("NDX 1DTE P97 PUT_SPREAD") == 1
        assert stack.count_slack("Position a3f8") == 2  # firing, resolved
        assert stack.count_email("Position a3f8") == 2
        assert stack.count_slack("Position b7c1") == 1 and stack.count_email("Position b7c1") == 1
        assert stack.count_slack("RISK LIMIT BREACH") == 2 and stack.count_email("RISK LIMIT BREACH") == 2
        assert stack.count_email("Regime change") == 0 and stack.count_email("OPPORTUNITY") == 0
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
