"""The Prometheus artefacts (prometheus/) checked with the real promtool: config, rules, rule unit tests, and the
conventions every alert must follow (labels, annotations, a RUNBOOK.md heading, the alert names the README documents)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*_test.yml"))
RUNBOOK_BASE = "https://github.com/spreadwatch/spreadwatch/blob/main/RUNBOOK.md#"

# The README's alerts: every one of these must exist.
DOCUMENTED_ALERTS = {
    "SpreadwatchRegimeChange", "SpreadwatchOpportunity", "SpreadwatchProfitTarget", "SpreadwatchStopLoss",
    "SpreadwatchTimeExit", "SpreadwatchExpiryDay", "SpreadwatchRiskLimitBreach", "SpreadwatchPositionLimitBreach",
    "SpreadwatchMarketDataStale", "SpreadwatchExporterDown", "SpreadwatchGridStale", "SpreadwatchPnlNotUpdated",
    "SpreadwatchWatchdog", "SpreadwatchPositionExpired", "SpreadwatchShortStrikeNear", "SpreadwatchShortStrikeBreached",
    "SpreadwatchMorningBrief", "SpreadwatchDaySummary",
}
# Added beside them: the pipeline watching itself (rules/spreadwatch-meta.yml).
META_ALERTS = {
    "SpreadwatchAlertmanagerMembersMissing", "SpreadwatchAlertmanagerConfigReloadFailed",
    "SpreadwatchPrometheusConfigReloadFailed", "SpreadwatchRuleEvaluationFailures", "SpreadwatchNotificationsFailing",
    "SpreadwatchPrometheusDown", "SpreadwatchAlertmanagerNotDiscovered",
}

DISPLAY_ZONE = ('{{ with query "spreadwatch_display_zone_info" }}{{ with first . }}{{ .Labels.offset_seconds }} '
                '{{ .Labels.abbreviation }} {{ .Labels.changed }} {{ .Labels.previous_offset_seconds }} '
                '{{ .Labels.previous_abbreviation }}{{ end }}{{ end }}')

promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules += [dict(rule, _file=path.name) for rule in group["rules"] if "alert" in rule]
    return rules


ALERTS = alert_rules()


@promtool
def test_promtool_check_config():
    result = run("promtool", "check", "config", "prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_prometheus_yml_scrapes_the_exporter_and_sends_to_alertmanager():
    config = yaml.safe_load((PROM / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert list(jobs) == ["spreadwatch", "prometheus", "alertmanager"]  # the exporter, then meta-monitoring
    assert config["rule_files"] == ["rules/*.yml"]
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets and all(":9093" in t for t in targets)
    assert jobs["alertmanager"]["static_configs"][0]["targets"] == targets  # scrapes what it sends to
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["localhost:9090"]  # itself


@promtool
@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_promtool_check_rules(path):
    result = run("promtool", "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@promtool
@pytest.mark.parametrize("path", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_promtool_rule_unit_tests(path):
    result = run("promtool", "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_one_unit_test_file_per_rule_file():
    assert {p.name.removesuffix(".yml") for p in RULE_FILES} == {p.name.removesuffix("_test.yml") for p in TEST_FILES}
    for test_file in TEST_FILES:
        listed = yaml.safe_load(test_file.read_text(encoding="utf-8"))["rule_files"]
        assert listed == [f"../rules/{test_file.name.removesuffix('_test.yml')}.yml"]


def test_every_alert_is_exercised_by_a_unit_test():
    text = "\n".join(p.read_text(encoding="utf-8") for p in TEST_FILES)
    untested = sorted(rule["alert"] for rule in ALERTS if rule["alert"] not in text)
    assert not untested, f"alerts without a promtool test: {untested}"


def test_every_alert_named_in_design_exists_and_nothing_else():
    names = [rule["alert"] for rule in ALERTS]
    assert len(names) == len(set(names)), "an alert is defined twice"
    assert set(names) == DOCUMENTED_ALERTS | META_ALERTS


@pytest.mark.parametrize("rule", ALERTS, ids=[r["alert"] for r in ALERTS])
def test_alert_has_labels_and_annotations(rule):
    assert re.fullmatch(r"Spreadwatch[A-Z][A-Za-z]+", rule["alert"])
    labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
    assert labels.get("severity") in {"critical", "warning", "info"}
    assert labels.get("category") in {"opportunity", "exit", "risk", "regime", "health", "digest"}
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{rule['alert']}: annotation {key} missing"
    assert annotations["runbook_url"] == RUNBOOK_BASE + rule["alert"].lower()
    # The display zone for the notification's times (alertmanager/templates/spreadwatch.tmpl, spreadwatch.started):
    # every alert whose line is stamped carries it, the same words in each; the lines of an opportunity and of the
    # digests are not stamped (a digest's own text writes its times in the display zone).
    if rule["labels"]["category"] not in ("opportunity", "digest"):
        assert annotations.get("display_zone") == DISPLAY_ZONE, f"{rule['alert']}: annotation display_zone"


def test_every_alert_has_a_runbook_heading():
    runbook = (ROOT / "RUNBOOK.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (\S+)\s*$", runbook, flags=re.M)
    assert sorted(headings) == sorted(rule["alert"] for rule in ALERTS)
    for heading in headings:
        # GitHub's anchor for "## SpreadwatchX" is #spreadwatchx: the runbook_url above points there.
        assert heading.lower() == re.sub(r"[^a-z0-9-]", "", heading.lower())


@pytest.mark.parametrize("rule", ALERTS, ids=[r["alert"] for r in ALERTS])
def test_no_rule_compares_an_exported_timestamp_with_time(rule):
    expr = rule["expr"]
    assert "time()" not in expr
    assert "_timestamp_seconds" not in expr


def test_exit_alerts_have_no_for_delay():
    # An exit alert fires within one scrape plus one evaluation of its condition becoming true.
    for rule in ALERTS:
        if rule["labels"]["category"] == "exit" and rule["alert"] != "SpreadwatchPnlNotUpdated":
            assert "for" not in rule, rule["alert"]
        if rule["labels"]["category"] in ("exit", "risk"):
            assert "keep_firing_for" not in rule, f"{rule['alert']}: would delay the resolve after a close"


def test_entry_and_exit_alerts_are_gated_on_session_and_fresh_data():
    for rule in ALERTS:
        if rule["alert"] in {"SpreadwatchOpportunity", "SpreadwatchProfitTarget", "SpreadwatchStopLoss",
                             "SpreadwatchTimeExit", "SpreadwatchExpiryDay", "SpreadwatchShortStrikeNear",
                             "SpreadwatchShortStrikeBreached"}:
            expr = rule["expr"]
            assert "spreadwatch_market_open == 1" in expr, rule["alert"]
            assert "spreadwatch_stale_after_seconds" in expr, rule["alert"]
            assert "spreadwatch_source_up == 0" in expr, rule["alert"]


def test_rules_use_only_documented_metrics():
    documented = set(re.findall(r"`(spreadwatch_[a-z0-9_]+)`", (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")))
    used = set()
    for path in RULE_FILES:
        used |= set(re.findall(r"\b(spreadwatch_[a-z0-9_]+)", path.read_text(encoding="utf-8")))
    undocumented = sorted(used - documented)
    assert not undocumented, f"rules use metrics not in the metrics contract (docs/metrics.md): {undocumented}"


def test_comparisons_keep_job_and_instance():
    # STYLE.md gotcha: `a > on(x) b` keeps only x. Comparisons here match identical label sets, or use
    # group_left (which keeps the left-hand labels) or ignoring(); on(...) appears only on and/unless/or.
    for path in RULE_FILES:
        for match in re.finditer(r"(==|!=|>=|<=|>|<|\*|/|\+|-)\s*on\s*\([^)]*\)\s*(group_left|group_right)?", path.read_text(encoding="utf-8")):
            assert match.group(2), f"{path.name}: {match.group(0)!r} drops job/instance"
