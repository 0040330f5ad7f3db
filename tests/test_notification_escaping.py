"""A label or annotation value can never become markup in a notification: on Slack a ticker or note carrying
`<!channel>` or `<https://evil.example|dashboard>` is shown as those characters (escaped for mrkdwn), never a
channel-wide ping or a disguised link; in email its HTML part is escaped; a Go template in a value is never executed.

Two checks: the templates' text (every Slack define passes each value through `spreadwatch.slack.escape`, and
Slack's headline says the same words as the email's), and the real Alertmanager with the repo's routing and
templates delivering one hostile alert to an HTTP sink (Slack's webhook) and an SMTP sink (email)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from realstack import SmtpSink, repo_routing, start_alertmanager, start_http_sink, start_smtp_sink

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "alertmanager" / "templates"
TEMPLATE = TEMPLATES / "spreadwatch.tmpl"
ESCAPE = "spreadwatch.slack.escape"
# What a Slack define may call: its own escaped parts, and parts that print no label or annotation as it is (the
# time and tag, the fixed "cleared" words, the dashboard address with its ticker percent-encoded). The time's zone
# abbreviation comes from the display_zone annotation only when that matches its form (digits, letters, + - : T Z),
# else the time is written in UTC: nothing Slack reads as markup gets through.
SLACK_SAFE_TEMPLATES = {"spreadwatch.stamp", "spreadwatch.tag", "spreadwatch.cleared", "spreadwatch.dashboard_url",
                        "spreadwatch.grafana_url"}
VALUES = re.compile(r"\.(Labels|Annotations|CommonLabels|CommonAnnotations|GroupLabels)\b|^\.$")
CONTROL = ("if ", "else", "end", "range ", "with ", "define ", "/*")

ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


def defines(text: str) -> dict[str, list[str]]:
    """Each `define` of a template file with the actions in its body (nested if/range/with followed to their end)."""
    out: dict[str, list[str]] = {}
    name, depth = None, 0
    for match in ACTION.finditer(text):
        action = match.group(1)
        if name is None:
            if action.startswith("define "):
                name, depth = action.split('"')[1], 1
                out[name] = []
            continue
        if action.startswith(("if ", "range ", "with ", "define ")):
            depth += 1
        elif action == "end":
            depth -= 1
            if depth == 0:
                name = None
                continue
        out[name].append(action)
    return out


def slack_leaks(actions: list[str]) -> list[str]:
    """The actions of a Slack define that would print a label or annotation value unescaped."""
    leaks = []
    for action in actions:
        if action.startswith(CONTROL):
            continue
        if action.startswith("template "):
            called = action.split('"')[1]
            if called == ESCAPE or called.startswith("spreadwatch.slack.") or called in SLACK_SAFE_TEMPLATES:
                continue
            leaks.append(action)
        elif VALUES.search(action):
            leaks.append(action)
    return leaks


def test_every_slack_define_escapes_every_value_it_prints():
    found = defines(TEMPLATE.read_text(encoding="utf-8"))
    slack = {name: actions for name, actions in found.items()
             if name.startswith("spreadwatch.slack.") and name != ESCAPE}
    assert {"spreadwatch.slack.title", "spreadwatch.slack.text", "spreadwatch.slack.line"} <= set(slack)
    assert {name: slack_leaks(actions) for name, actions in slack.items() if slack_leaks(actions)} == {}
    # The check can fail: the unescaped line and headline are what email uses, and they print values as they are.
    assert slack_leaks(found["spreadwatch.line"]) and slack_leaks(found["spreadwatch.headline"])


def test_every_slack_field_of_the_routing_uses_the_slack_defines():
    config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    fields = [(receiver["name"], key, value) for receiver in config["receivers"]
              for slack in receiver.get("slack_configs", []) for key, value in slack.items()
              if isinstance(value, str) and "{{" in value]
    assert fields
    for receiver, key, value in fields:
        called = re.findall(r'template "([^"]+)"', value)
        assert called and all(c.startswith("spreadwatch.slack.") or c == "spreadwatch.dashboard_url"
                              for c in called), (receiver, key, value)


def unescaped(actions: list[str]) -> str:
    """A define's actions with the Slack escape taken off, to compare words with the email's."""
    return "\n".join(re.sub(rf'^template "{re.escape(ESCAPE)}" (.*)$', r"\1", a) for a in actions)


def test_slack_headline_says_the_same_words_as_the_email_headline():
    found = defines(TEMPLATE.read_text(encoding="utf-8"))
    assert unescaped(found["spreadwatch.slack.headline"]) == unescaped(found["spreadwatch.headline"])
    text = TEMPLATE.read_text(encoding="utf-8")
    body = {name: text.split(f'{{{{ define "{name}" -}}}}')[1].split("{{- end }}\n{{- end }}")[0]
            for name in ("spreadwatch.headline", "spreadwatch.slack.headline")}
    literal = {name: re.sub(r"{{.*?}}", "", b) for name, b in body.items()}  # the words around the actions
    assert literal["spreadwatch.slack.headline"] == literal["spreadwatch.headline"]


# ----------------------------------------------------------------------------- through the real Alertmanager

TICKER = "NDX<!channel>"
NOTE = "<https://evil.example|dashboard> & {{ .Status }} <!channel>"
RUNBOOK = "https://github.com/spreadwatch/spreadwatch/blob/main/RUNBOOK.md#spreadwatchprofittarget"


def hostile_alert() -> dict:
    return {
        "labels": {"alertname": "SpreadwatchProfitTarget", "category": "exit", "severity": "critical",
                   "ticker": TICKER, "position_id": "7", "band": "P98", "spread_type": "iron_condor", "note": NOTE,
                   "job": "spreadwatch", "instance": "exporter:9108"},
        "annotations": {
            "summary": f"EXIT SIGNAL - Position 7 ({TICKER}) | Reason: Profit target hit | P&L: $142.50 | {NOTE}",
            "description": f"Note: {NOTE}. Close it in your broker.",
            "runbook_url": RUNBOOK,
        },
        "startsAt": datetime(2026, 11, 24, 15, 30, tzinfo=UTC).isoformat().replace("+00:00", "Z"),
    }


def strings(value) -> list[str]:
    """Every string in a JSON body."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


@pytest.mark.slow
def test_a_hostile_ticker_and_note_reach_slack_and_email_escaped(tmp_path):
    smtp, slack = start_smtp_sink(), start_http_sink()
    am = None
    try:
        am = start_alertmanager(repo_routing(tmp_path, smtp.smarthost, slack.url + "/slack", group_wait="1s",
                                             group_interval="2s"), tmp_path, templates_dir=TEMPLATES)
        am.post_alerts([hostile_alert()])
        # An exit goes to the phone too (a push to the same sink, without Slack's attachments): Slack's is the one.
        posted = slack.wait_for(lambda m: isinstance(m.body, dict) and "attachments" in m.body, 30,
                                "the Slack notification").body
        mail = smtp.wait_for(lambda m: True, 30, "the email").body
    finally:
        if am is not None:
            am.stop()
        smtp.stop()
        slack.stop()

    # Slack: no live mention or link anywhere in what was posted; the characters are there, as entities.
    (attachment,) = posted["attachments"]
    for text in strings(posted):
        assert "<!channel>" not in text and "<https://evil.example" not in text, text
        assert "{{" not in text or "{{ .Status }}" in text, text  # a template in a value is not executed
    title, body = attachment["title"], attachment["text"]
    assert title == ("[EXIT] EXIT SIGNAL - Position 7 (NDX&lt;!channel&gt;) | Reason: Profit target hit | "
                     "P&amp;L: $142.50 | &lt;https://evil.example|dashboard&gt; &amp; {{ .Status }} &lt;!channel&gt;")
    assert attachment["fallback"] == title
    assert "Note: &lt;https://evil.example|dashboard&gt; &amp; {{ .Status }} &lt;!channel&gt;. Close it" in body
    # The only links are the notification's own: the runbook and the dashboard (its ticker percent-encoded).
    dashboard = "http://localhost:3000/d/spreadwatch?var-ticker=NDX%3C!channel%3E"
    assert re.findall(r"<([^>]*)>", body) == [f"{RUNBOOK}|Runbook: SpreadwatchProfitTarget",
                                               f"{dashboard}|Open the spreadwatch dashboard"]
    assert attachment["title_link"] == dashboard

    # Email: the HTML part escaped by Alertmanager, the template not executed; the text part plain as it was.
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "<!channel>" not in html and "evil.example|dashboard>" not in html
    assert "&lt;https://evil.example|dashboard&gt; &amp; {{ .Status }} &lt;!channel&gt;" in html
    assert 'href="https://evil.example' not in html
    assert re.findall(r'href="([^"]*)"', html)[:1] == [RUNBOOK]
    plain = SmtpSink.text_of(mail).replace("\r\n", "\n")
    assert f"Note: {NOTE}. Close it" in plain
    assert TICKER in mail["Subject"] and "{{ .Status }}" in mail["Subject"]
