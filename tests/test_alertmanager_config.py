"""The Alertmanager artefacts (alertmanager/) checked with the real amtool: the config, the route table, and that
no secret is written in the repository's config."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
AM = ROOT / "alertmanager"
CONFIG = AM / "alertmanager.yml"

amtool = pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool (Debian package prometheus-alertmanager) not installed")


def route_rows() -> list[tuple[list[str], str]]:
    rows = []
    for line in (AM / "tests" / "routes.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        labels, receivers = line.split("\t")
        rows.append((labels.split(), receivers))
    return rows


ROWS = route_rows()


def config() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


@amtool
def test_amtool_check_config():
    result = subprocess.run(["amtool", "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@amtool
@pytest.mark.parametrize("labels,receivers", ROWS, ids=[" ".join(labels) for labels, _ in ROWS])
def test_route_table(labels, receivers):
    result = subprocess.run(
        ["amtool", "config", "routes", "test", "--config.file", str(CONFIG), f"--verify.receivers={receivers}", *labels],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{labels} -> {result.stdout.strip()} (expected {receivers})"


@amtool
def test_route_check_can_fail():
    # The verification above is only worth something if amtool rejects a wrong receiver.
    result = subprocess.run(
        ["amtool", "config", "routes", "test", "--config.file", str(CONFIG), "--verify.receivers=email",
         "alertname=SpreadwatchStopLoss", "category=exit", "severity=critical"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_route_table_covers_every_alert_and_receiver():
    from test_prometheus_rules import ALERTS  # the rules are the list of alerts

    routed = {labels[0].removeprefix("alertname=") for labels, _ in ROWS}
    assert {rule["alert"] for rule in ALERTS} <= routed
    receivers = {r["name"] for r in config()["receivers"]}
    assert {name for _, row in ROWS for name in row.split(",")} == receivers


def test_secrets_only_through_files():
    cfg = config()
    glob = cfg["global"]
    assert "slack_api_url" not in glob and glob["slack_api_url_file"].startswith("/")
    assert "smtp_auth_password" not in glob and glob["smtp_auth_password_file"].startswith("/")
    for receiver in cfg["receivers"]:
        for slack in receiver.get("slack_configs", []):
            assert "api_url" not in slack
        for email in receiver.get("email_configs", []):
            assert "auth_password" not in email and "auth_secret" not in email
        for hook in receiver.get("webhook_configs", []):
            # Alertmanager 0.25 has no url_file: a webhook's URL is written here only when it is no secret, because
            # the service wants a token read from a file (the phone's ntfy topic), and it carries no credentials.
            auth = hook.get("http_config", {}).get("authorization", {})
            assert auth.get("credentials_file", "").startswith("/etc/alertmanager/secrets/"), hook
            assert "credentials" not in auth and not re.match(r"https?://[^/]*@", hook["url"])


def phone_hooks(receiver: str) -> list[dict]:
    return next(r for r in config()["receivers"] if r["name"] == receiver)["webhook_configs"]


def test_the_phone_gets_exits_and_stop_losses_and_breaches_at_urgent_priority():
    from urllib.parse import parse_qs, urlsplit

    def query(receiver: str) -> dict[str, list[str]]:
        [hook] = phone_hooks(receiver)
        assert hook["send_resolved"] is False  # a closed position needs no buzz
        return parse_qs(urlsplit(hook["url"]).query)

    normal, urgent = query("slack-email-phone"), query("slack-email-phone-urgent")
    assert normal["p"] == ["3"] and urgent["p"] == ["5"]  # ntfy: 3 default, 5 urgent
    for q in (normal, urgent):
        assert q["tpl"] == ["1"]  # ntfy fills the title and message templates from Alertmanager's JSON
        assert q["m"] == ["{{range .alerts}}{{.annotations.summary}}\n{{end}}"]
        assert q["t"] == ["spreadwatch {{.commonLabels.ticker}}"]
    # Beside the phone, the same Slack and email as every other exit.
    both = next(r for r in config()["receivers"] if r["name"] == "slack-and-email")
    for name in ("slack-email-phone", "slack-email-phone-urgent"):
        phone = next(r for r in config()["receivers"] if r["name"] == name)
        assert phone["slack_configs"] == both["slack_configs"] and phone["email_configs"] == both["email_configs"]


def test_no_secret_literal_in_the_repository_config():
    text = "\n".join(p.read_text(encoding="utf-8") for p in [CONFIG, *sorted((AM / "templates").glob("*.tmpl"))])
    assert not re.search(r"hooks\.slack\.com/services/\S+", text), "a Slack webhook URL is written in the config"
    assert not re.search(r"xox[abp]-[0-9A-Za-z-]+", text), "a Slack token is written in the config"
    assert not re.search(r"^\s*(smtp_)?auth_(password|secret)\s*:", text, flags=re.M)
    assert not re.search(r"(password|secret|token)\s*:\s*['\"]?[^'\"\s]{4,}", text.replace("_file:", "_FILE:"), flags=re.I)


def test_inhibitions():
    rules = config()["inhibit_rules"]
    as_text = [(r["source_matchers"], r["target_matchers"], r["equal"]) for r in rules]
    assert (['alertname="SpreadwatchMarketDataStale"'], ['category=~"opportunity|exit"'], ["job", "instance"]) in as_text
    assert any("SpreadwatchRiskLimitBreach" in s[0] and t == ['category="opportunity"'] for s, t, _ in as_text)


def test_grouping_and_repeats():
    routes = {tuple(r["matchers"]): r for r in config()["route"]["routes"]}
    opportunity = routes[('category="opportunity"',)]
    # One notification per ticker and entry window; a setup's labels carry no width, so none differ only in it.
    assert opportunity["group_by"] == ["alertname", "ticker", "window"]
    assert opportunity["repeat_interval"] in ("12h", "24h")  # longer than any entry window
    receiver = next(r for r in config()["receivers"] if r["name"] == opportunity["receiver"])
    integrations = receiver["slack_configs"] + receiver["email_configs"]
    assert len(integrations) == 2 and not any(i["send_resolved"] for i in integrations)  # a setup leaving is not news
    exit_route = routes[('category="exit"',)]
    assert exit_route["group_by"] == ["alertname", "ticker", "position_id"]
    assert exit_route["repeat_interval"] == "30m"
    assert config()["route"]["group_by"] == ["alertname", "ticker"]


def all_utc_offsets() -> set[int]:
    """Every UTC offset (seconds) of every IANA zone, 2025 to 2035."""
    found = set()
    for name in available_timezones():
        zone, at = ZoneInfo(name), datetime(2025, 1, 1, tzinfo=UTC)
        while at.year < 2036:
            offset = at.astimezone(zone).utcoffset()
            found.add(int(offset.total_seconds()) if offset is not None else 0)
            at += timedelta(days=15)
    return found


def test_the_stamps_shift_by_every_offset_a_display_zone_can_have():
    # Alertmanager 0.25 cannot convert zones: spreadwatch.started and spreadwatch.ended shift an alert's instants by
    # the offset its display_zone annotation names, one branch per offset. Each branch adds exactly that offset, and
    # every offset a zone has (or will have, as far as the tz database knows) has its branch in both.
    text = (AM / "templates" / "spreadwatch.tmpl").read_text(encoding="utf-8")
    for name in ("spreadwatch.started", "spreadwatch.ended"):
        body = text.split(f'{{{{ define "{name}" -}}}}')[1].split("{{- end }}")[0]
        branches = re.findall(r'else if eq \$o "(-?\d+)" }}{{ \$t = \$t\.Add (-?\d+) -}}', body)
        assert all(int(shift) == int(offset) * 10**9 for offset, shift in branches), name
        assert {int(offset) for offset, _ in branches} | {0} == all_utc_offsets(), name
        assert 'if eq $o "0"' in body, name
