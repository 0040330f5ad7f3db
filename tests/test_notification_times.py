"""An alert's line in Slack and email gives the instant it started firing (and a resolved alert's, when it resolved)
as a clock in the display zone shows it, with the zone's abbreviation: "[2026-11-24 07:30:00 PT] [ERROR] ...".

Alertmanager 0.25 cannot convert zones: the exporter exports the display zone's offsets around now
(spreadwatch_display_zone_info), the rules attach them to each alert (the `display_zone` annotation), and the templates
shift the alert's instants by them. Checked with the real Alertmanager, the repo's routing and templates: winter and
summer time (an alert that started before the autumn change and resolved after it), a zone with half-hour offsets,
and the UTC fallback for an alert without the annotation or with one that is not of its form."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from realstack import SmtpSink, repo_routing, start_alertmanager, start_http_sink, start_smtp_sink
from spreadwatch.domain.display import zone_offsets

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "alertmanager" / "templates"
PACIFIC = ZoneInfo("America/Los_Angeles")


def annotation(now: datetime, zone: ZoneInfo) -> str:
    """The display_zone annotation the rules attach at `now`: the exporter's spreadwatch_display_zone_info labels."""
    o = zone_offsets(now, zone)
    changed = o.changed.strftime("%Y-%m-%dT%H:%M:%SZ") if o.changed else ""
    return f"{o.offset_seconds} {o.abbreviation} {changed} {o.previous_offset_seconds} {o.previous_abbreviation}"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def risk_alert(case: str, starts: datetime, zone: str | None, ends: datetime | None = None) -> dict:
    alert = {"labels": {"alertname": "SpreadwatchRiskLimitBreach", "category": "risk", "severity": "critical",
                        "case": case, "job": "spreadwatch", "instance": "exporter:9108"},
             "annotations": {"summary": f"case {case}", "description": "d", "runbook_url": "https://example.test/r"},
             "startsAt": iso(starts)}
    if zone is not None:
        alert["annotations"]["display_zone"] = zone
    if ends is not None:
        alert["endsAt"] = iso(ends)
    return alert


def test_the_annotation_follows_the_zone_through_its_changes():
    winter = annotation(datetime(2026, 11, 24, 16, tzinfo=UTC), PACIFIC)
    assert winter == "-28800 PT 2026-11-01T09:00:00Z -25200 PT"
    assert annotation(datetime(2026, 7, 1, tzinfo=UTC), PACIFIC) == "-25200 PT 2026-03-08T10:00:00Z -28800 PT"
    assert annotation(datetime(2026, 11, 24, tzinfo=UTC), ZoneInfo("Asia/Kolkata")) == "19800 IST  19800 IST"
    assert annotation(datetime(2026, 11, 24, tzinfo=UTC), ZoneInfo("Europe/London")) == \
        "0 GMT 2026-10-25T01:00:00Z 3600 BST"


@pytest.mark.slow
def test_slack_and_email_write_each_alert_time_in_the_display_zone(tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    # Alertmanager drops an alert that resolved long ago: "now" is real, the zones' offsets are pinned by the
    # annotations (taken at instants of their own, as the rules would have at those instants).
    winter = annotation(datetime(2026, 11, 24, 16, tzinfo=UTC), PACIFIC)
    summer = annotation(datetime(2026, 7, 1, tzinfo=UTC), PACIFIC)
    india = annotation(datetime(2026, 11, 24, tzinfo=UTC), ZoneInfo("Asia/Kolkata"))
    started = now - timedelta(minutes=10)
    # The same instants in UTC, shifted by hand: Pacific standard time is UTC-8, India UTC+5:30.
    pst = (started - timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    pdt = (started - timedelta(hours=7)).strftime("%Y-%m-%d %H:%M:%S")
    ist = (started + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
    utc = started.strftime("%Y-%m-%d %H:%M:%S")
    # An alert whose start lies before the zone's last change takes the offset before it: the annotation says the
    # change was 5 minutes ago (summer time -> winter time), the alert started 10 minutes ago.
    changed = iso(now - timedelta(minutes=5))
    spanning = f"-28800 PT {changed} -25200 PT"
    alerts = [risk_alert("winter", started, winter), risk_alert("summer", started, summer),
              risk_alert("india", started, india), risk_alert("spanning", started, spanning),
              risk_alert("missing", started, None), risk_alert("hostile", started, "<!channel> PT  0 PT")]
    smtp, slack = start_smtp_sink(), start_http_sink()
    am = None
    try:
        am = start_alertmanager(repo_routing(tmp_path, smtp.smarthost, slack.url + "/slack", group_wait="1s",
                                             group_interval="2s"), tmp_path, templates_dir=TEMPLATES)
        am.post_alerts(alerts)
        posted = slack.wait_for(lambda m: isinstance(m.body, dict), 30, "the Slack notification").body
        mail = smtp.wait_for(lambda m: True, 30, "the email")
        # The winter alert resolves now: its end is written in the display zone too.
        ended = now
        am.post_alerts([risk_alert("winter", started, winter, ends=ended)])
        resolved = slack.wait_for(lambda m: isinstance(m.body, dict) and "cleared" in m.body["attachments"][0]["text"],
                                  30, "the Slack notification with the resolved alert").body
    finally:
        if am is not None:
            am.stop()
        smtp.stop()
        slack.stop()

    expected = {"winter": f"[{pst} PT]", "summer": f"[{pdt} PT]", "india": f"[{ist} IST]", "spanning": f"[{pdt} PT]",
                "missing": f"[{utc} UTC]", "hostile": f"[{utc} UTC]"}
    text = posted["attachments"][0]["text"]
    plain = SmtpSink.text_of(mail.body).replace("\r\n", "\n")
    for case, stamp in expected.items():
        assert f"{stamp} [ERROR] case {case}\n" in text, (case, text)
        assert f"{stamp} [ERROR] case {case}\n" in plain, (case, plain)
    end = (ended - timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    line = re.search(r"^.*\[RESOLVED\] case winter.*$", resolved["attachments"][0]["text"], re.M)
    assert line is not None and line[0] == f"[{pst} PT] [RESOLVED] case winter (cleared {end} PT)", resolved
