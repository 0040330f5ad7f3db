"""The phone's push and a failing channel, on a real Alertmanager and Prometheus with the repo's routing and rules.

One stack for the module: the repo's alertmanager.yml (sinks for Slack, email and the ntfy push; short timers) with
the Slack webhook's secret file deleted, as a user who forgot to create it, and a Prometheus scraping that
Alertmanager with the repo's meta-monitoring rules (1 s intervals).
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from realstack import (
    PUSH_TOKEN,
    SmtpSink,
    repo_routing,
    start_alertmanager,
    start_http_sink,
    start_prometheus,
    start_smtp_sink,
    wait_until,
)
from spreadwatch.edges.cli import cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("channels")
    slack, push, smtp = start_http_sink(), start_http_sink(), start_smtp_sink()
    routing = repo_routing(workdir, smtp.smarthost, slack.url + "/slack", group_wait="1s", group_interval="2s",
                           push_url=push.url)
    (workdir / "secrets" / "slack_webhook_url").unlink()  # forgotten: every Slack notification fails
    am = start_alertmanager(routing, workdir, templates_dir=ROOT / "alertmanager" / "templates")
    prom = start_prometheus(ROOT / "prometheus", workdir, targets={"alertmanager": [am.url.removeprefix("http://")]},
                            alertmanager_urls=[am.url], rule_files=["rules/spreadwatch-meta.yml"])
    try:
        yield {"am": am, "prom": prom, "slack": slack, "push": push, "smtp": smtp}
    finally:
        for part in (prom, am, slack, push, smtp):
            part.stop()


def exit_alert(alertname: str, severity: str, position_id: str, summary: str) -> dict:
    return {"labels": {"alertname": alertname, "category": "exit", "severity": severity, "ticker": "SPX",
                       "position_id": position_id, "job": "spreadwatch", "instance": "exporter:9877"},
            "annotations": {"summary": summary}}


def test_the_secrets_check_names_the_receivers_that_lost_their_slack_webhook(stack):
    result = CliRunner().invoke(cli, ["check-alerting", str(stack["am"].config_path)])
    assert result.exit_code == 1
    missing = str(stack["am"].config_path.parents[1] / "secrets" / "slack_webhook_url")
    reported = {line.split(":")[0].removeprefix("receiver ") for line in result.stdout.splitlines()}
    assert reported == {"slack", "slack-and-email", "slack-and-email-firing", "digest", "slack-email-phone",
                        "slack-email-phone-urgent"}
    assert all(f"{missing} missing" in line for line in result.stdout.splitlines())


def test_a_stop_loss_is_pushed_urgent_and_a_profit_target_at_default_priority(stack):
    am, push = stack["am"], stack["push"]
    am.post_alerts([exit_alert("SpreadwatchStopLoss", "critical", "p1", "EXIT SIGNAL - Position p1 | Reason: Stop loss hit"),
                    exit_alert("SpreadwatchProfitTarget", "warning", "p2", "EXIT SIGNAL - Position p2 | Reason: Profit target hit")])

    def pushed(position_id: str):
        return push.wait_for(lambda m: any(a["labels"].get("position_id") == position_id for a in m.body["alerts"]),
                             TIMEOUT, f"the push of position {position_id}")

    for position_id, priority in (("p1", "5"), ("p2", "3")):
        message = pushed(position_id)
        where = urlsplit(message.path)
        query = parse_qs(where.query)
        assert where.path == "/spreadwatch-alerts"  # the topic, as in the repo's URL
        assert query["p"] == [priority] and query["tpl"] == ["1"]
        assert message.headers["Authorization"] == f"Bearer {PUSH_TOKEN}"  # read from the secret file
        [alert] = message.body["alerts"]
        assert alert["annotations"]["summary"].startswith(f"EXIT SIGNAL - Position {position_id} |")
    # Email still delivers both; Slack cannot (its secret file is missing).
    stack["smtp"].wait_for(lambda m: "Position p1" in m.body["Subject"], TIMEOUT, "the stop-loss email")


def test_failing_slack_notifications_fire_an_alert_sent_by_email(stack):
    stack["am"].post_alerts([exit_alert("SpreadwatchTimeExit", "warning", "p3", "EXIT SIGNAL - Position p3 | Time exit")])
    prom = stack["prom"]
    wait_until(lambda: [a for a in prom.alerts() if a["labels"]["alertname"] == "SpreadwatchNotificationsFailing"
                        and a["labels"].get("integration") == "slack" and a["state"] == "firing"],
               TIMEOUT, "SpreadwatchNotificationsFailing for slack")
    message = stack["smtp"].wait_for(lambda m: "Notifications by slack are failing" in m.body["Subject"], TIMEOUT,
                                     "the email saying Slack fails")
    assert "spreadwatch check-alerting" in SmtpSink.text_of(message.body)
    time.sleep(3)  # a few more group intervals: nothing of it went to the failing channel, nor to the phone
    assert not [m for m in stack["push"].snapshot() if any(a["labels"]["alertname"] == "SpreadwatchNotificationsFailing"
                                                           for a in m.body["alerts"])]
    assert stack["slack"].snapshot() == []
