"""Grafana as code: the generated dashboards, their provisioning, and every panel query against real components.

- The committed JSON is exactly what grafana/generate.py produces (byte for byte).
- The dashboard shows the market context, opportunities, positions, portfolio and data health, and every metric it
  queries is documented and emitted.
- Provisioning: valid YAML; datasources (Prometheus, Alertmanager) with the uids the dashboard uses, at the compose
  service names and ports; the dashboard provider reads the directory compose mounts the committed dashboards at;
  Grafana's admin password comes from a secret file and anonymous access is off.
- Every Prometheus panel query (variables and Grafana's interval macros substituted) runs against a REAL
  Prometheus (the repo's prometheus.yml and rules) scraping the REAL exporter (its loop, collector and HTTP server
  on the bundled replay day, held on a virtual clock at an instant inside the entry window; positions logged with
  the CLI) and must return data. The Alertmanager panel has no query: it reads
  alert groups from the Alertmanager datasource, so the test checks that a real Alertmanager fed by that Prometheus
  (the repo's routing) answers `/api/v2/alerts/groups` (what Grafana's alertGroups panel calls through the
  datasource proxy) with the always-firing SpreadwatchWatchdog, and that the panel names a provisioned
  Alertmanager datasource.
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
import yaml

from exporter_support import Running, make_service, scrape
from realstack import (
    exposition_samples,
    repo_routing,
    start_alertmanager,
    start_http_sink,
    start_prometheus,
    start_smtp_sink,
    wait_until,
)
from spreadwatch.config import bundled_path
from spreadwatch.edges.gridfile import BUNDLED_GRID
from spreadwatch.edges.providers.replay import ReplayProvider

ROOT = Path(__file__).resolve().parents[1]
GENERATE = ROOT / "grafana" / "generate.py"
DASHBOARDS = ROOT / "grafana" / "dashboards"
PROVISIONING = ROOT / "grafana" / "provisioning"
COMPOSE = ROOT / "docker-compose.yml"
# The bundled SPX day's first bar (09:31 ET): its setups at the open are in their entry window (09:30-09:45 ET).
REPLAY_START = datetime.fromisoformat("2019-01-02T14:31:00+00:00")


# ------------------------------------------------------------------------------------------------ helpers


def load_dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels_of(dashboard: dict) -> list[dict]:
    """Every panel, rows' nested (collapsed) panels included; row panels themselves left out."""
    out = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def all_panels() -> list[tuple[str, dict]]:
    return [(name, panel) for name, board in load_dashboards().items() for panel in panels_of(board)]


def prometheus_targets() -> list[tuple[str, dict, dict]]:
    """(dashboard file, panel, target) for every target that is a PromQL query."""
    out = []
    for name, panel in all_panels():
        for target in panel.get("targets") or []:
            ds = target.get("datasource") or panel.get("datasource") or {}
            if ds.get("type") == "prometheus":
                out.append((name, panel, target))
    return out


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def datasources() -> list[dict]:
    files = sorted((PROVISIONING / "datasources").glob("*.y*ml"))
    assert files, "no datasource provisioning file"
    out = []
    for path in files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc.get("apiVersion") == 1, path
        out.extend(doc["datasources"])
    return out


def volume_mounts(service: dict) -> list[tuple[str, str, str]]:
    """(host source, container target, mode) for the service's short-syntax bind mounts (named volumes left out)."""
    out = []
    for spec in service.get("volumes", []):
        parts = spec.split(":")
        if not parts[0].startswith((".", "/")):
            continue  # a named volume
        out.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: spreadwatch_* names plus Prometheus's own series it may use."""
    names = set(re.findall(r"\b(spreadwatch_[a-z0-9_]+)\b", expr))
    names |= {n for n in ("up", "ALERTS", "ALERTS_FOR_STATE") if re.search(rf"\b{n}\s*[{{(\[]", expr)}
    return names


def parse_duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text)
    assert match, f"not a Prometheus duration: {text}"
    return int(match.group(1)) * units[match.group(2)]


# --------------------------------------------------------------------------------------- (a) regeneration


def test_regenerating_the_dashboards_gives_the_committed_json_byte_for_byte(tmp_path):
    result = subprocess.run([sys.executable, str(GENERATE), "--out", str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    produced = {p.name: p.read_bytes() for p in sorted(tmp_path.glob("*.json"))}
    committed = {p.name: p.read_bytes() for p in sorted(DASHBOARDS.glob("*.json"))}
    assert produced, "the generator wrote no dashboard"
    assert sorted(produced) == sorted(committed), "generated and committed dashboard files differ in name"
    for name, data in produced.items():
        if data != committed[name]:
            diff = "".join(list(difflib.unified_diff(committed[name].decode().splitlines(True),
                                                     data.decode().splitlines(True),
                                                     f"committed/{name}", f"generated/{name}"))[:60])
            pytest.fail(f"grafana/dashboards/{name} is not what grafana/generate.py produces; run "
                        f"`python grafana/generate.py` and commit:\n{diff}")
    check = subprocess.run([sys.executable, str(GENERATE), "--check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr


# ------------------------------------------------------------------------------------- dashboard content


def find_panel(title: str) -> dict:
    matches = [p for _, p in all_panels() if p.get("title") == title]
    assert len(matches) == 1, f"expected one panel titled {title!r}, found {len(matches)}"
    return matches[0]


def exprs(panel: dict) -> str:
    return "\n".join(t.get("expr", "") for t in panel.get("targets") or [])


def test_the_main_dashboard_has_what_the_issue_lists():
    board = load_dashboards()["spreadwatch.json"]
    assert board["uid"] == "spreadwatch"  # Alertmanager's notifications link to /d/spreadwatch
    # Market context: price and change, VIX with regime colours and thresholds, IV rank, volume ratio,
    # market status, minutes to close.
    assert "spreadwatch_price{" in exprs(find_panel("Price"))
    assert "spreadwatch_change_ratio{" in exprs(find_panel("Change"))
    vix = find_panel("VIX")
    steps = vix["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 12.0, 16.0, 20.0, 30.0]  # the default regime boundaries
    assert len({s["color"] for s in steps}) == 5
    boundaries = find_panel("VIX and regime boundaries")
    assert boundaries["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
    regime = find_panel("Regime")
    texts = {v["text"] for m in regime["fieldConfig"]["defaults"]["mappings"] for v in m["options"].values()}
    assert texts == {"very_low", "low", "medium", "high", "extreme"}
    assert "spreadwatch_iv_rank_ratio{" in exprs(find_panel("IV rank / percentile"))
    assert "spreadwatch_volume_ratio{" in exprs(find_panel("Volume ratio"))
    market = exprs(find_panel("Market"))
    assert "spreadwatch_market_session" in market and "spreadwatch_entry_window_open" in market
    to_close = find_panel("To close")
    assert "spreadwatch_market_seconds_to_close / 60" in exprs(to_close)
    assert to_close["fieldConfig"]["defaults"]["unit"] == "m"

    # Top opportunities: in-window highlighted, suggested strikes (every leg), blocked by risk.
    opp = find_panel("Top opportunities")
    text = exprs(opp)
    for needle in ("spreadwatch_opportunity_in_window", "spreadwatch_opportunity_blocked_by_risk",
                   *(f'leg="{leg}"' for leg in ("short_put", "long_put", "short_call", "long_call"))):
        assert needle in text, needle
    in_window = [o for o in opp["fieldConfig"]["overrides"] if o["matcher"]["options"] == "In window"]
    assert in_window and any(p["id"] == "custom.cellOptions" and p["value"]["type"] == "color-background"
                             for p in in_window[0]["properties"])

    # Portfolio summary: open count, capital at risk against its limit, unrealized and realized P&L.
    count = exprs(find_panel("Open count"))
    assert 'spreadwatch_portfolio_positions{status="open"}' in count and "spreadwatch_portfolio_max_positions" in count
    capital = exprs(find_panel("Capital at risk"))
    assert "spreadwatch_portfolio_risk_dollars" in capital and "spreadwatch_portfolio_max_risk_dollars" in capital
    assert "spreadwatch_portfolio_unrealized_pnl_dollars" in exprs(find_panel("Unrealized P&L"))
    assert "spreadwatch_portfolio_realized_pnl_dollars" in exprs(find_panel("Realized P&L"))

    # Open positions: P&L against target and stop, sessions to expiry; P&L over time.
    table = exprs(find_panel("Open positions"))
    for metric in ("pnl_dollars", "profit_target_dollars", "stop_loss_dollars", "sessions_to_expiry"):
        assert f"spreadwatch_position_{metric}{{" in table, metric
    lines = exprs(find_panel("Position P&L vs target and stop"))
    assert all(m in lines for m in ("pnl_dollars", "profit_target_dollars", "stop_loss_dollars"))
    # The estimated P&L next to the logged one, with its source: a line per estimate named by its source, and in
    # the table the exit P&L, where it comes from (logged, market, model) and how old it is.
    pnl_panel = find_panel("Position P&L vs target and stop")
    assert any("estimated_pnl_dollars" in t["expr"] and "{{source}}" in t["legendFormat"]
               for t in pnl_panel["targets"])
    positions = find_panel("Open positions")
    for metric in ("exit_pnl_dollars", "exit_pnl_age_seconds", 'estimated_pnl_dollars{source="model"'):
        assert f"spreadwatch_position_{metric}" in exprs(positions), metric
    (source,) = [o for o in positions["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Exit P&L from"]
    (mapping,) = [p["value"] for p in source["properties"] if p["id"] == "mappings"]
    assert {k: v["text"] for k, v in mapping[0]["options"].items()} == {"0": "logged", "1": "market", "2": "model"}
    # The distance to the short strikes: points, ratio, expected moves (with the near threshold), per leg.
    strikes = exprs(find_panel("Distance to the short strikes"))
    for suffix in ("", "_distance_points", "_distance_ratio", "_distance_expected_moves", "_near_expected_moves"):
        assert f"spreadwatch_position_short_strike{suffix}{{" in strikes, suffix
    assert "leg" in strikes
    assert "near_expected_moves" in exprs(find_panel("Short strike distance (expected moves)"))
    assert "realized_pnl_dollars" in exprs(find_panel("P&L over time"))

    # Firing (Alertmanager) and recent (Prometheus ALERTS) alerts, data health, regime history.
    assert find_panel("Firing alerts (Alertmanager)")["type"] == "alertGroups"
    assert exprs(find_panel("Recent alerts")).startswith("ALERTS{")
    assert "spreadwatch_source_up" in exprs(find_panel("Data sources"))
    assert "spreadwatch_source_age_seconds" in exprs(find_panel("Data age"))
    history = find_panel("Regime history")
    assert history["type"] == "state-timeline" and "spreadwatch_regime_level" in exprs(history)

    # A ticker variable, used by every per-ticker query.
    (ticker,) = [v for v in board["templating"]["list"] if v["name"] == "ticker"]
    assert ticker["type"] == "query" and ticker["includeAll"] and ticker["multi"]
    for _, panel, target in prometheus_targets():
        for name in metric_names(target["expr"]):
            if name in PER_TICKER:
                assert 'ticker=~"$ticker"' in target["expr"], f"{panel['title']}: {target['expr']}"


# Metrics with a ticker label: a query on them must honour the ticker variable.
PER_TICKER = {
    "spreadwatch_price", "spreadwatch_change_ratio", "spreadwatch_iv_rank_ratio", "spreadwatch_iv_percentile_ratio",
    "spreadwatch_volume_ratio", "spreadwatch_opportunity_score", "spreadwatch_opportunity_in_window",
    "spreadwatch_opportunity_strike", "spreadwatch_position_pnl_dollars",
}


def documented_metrics() -> set[str]:
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    return set(re.findall(r"`(spreadwatch_[a-z0-9_]+)`", text))


def emitted_metrics() -> set[str]:
    """Names the collector builds (counters get their `_total` sample suffix)."""
    source = (ROOT / "exporter" / "spreadwatch" / "edges" / "collector.py").read_text(encoding="utf-8")
    names = set(re.findall(r"\"(spreadwatch_[a-z0-9_]+)\"", source))
    names |= {n + "_total" for n in re.findall(r"CounterMetricFamily\(\"(spreadwatch_[a-z0-9_]+)\"", source)}
    # f"spreadwatch_opportunity_{k}" / f"spreadwatch_position_{k}": the keys of their dicts
    for prefix, block in (("spreadwatch_opportunity_", "_opportunities"), ("spreadwatch_position_", "_positions")):
        body = source.split(f"def {block}(", 1)[1].split("\n    def ", 1)[0]
        names |= {prefix + k for k in re.findall(r"\"([a-z_]+)\": \"", body)}
    # ... and of the module's tables of position families (collector.POSITION_DOCS and its siblings)
    for prefix, table_name in (("spreadwatch_position_", "POSITION_DOCS"), ("spreadwatch_position_", "MODEL_DOCS"),
                               ("spreadwatch_position_", "EXIT_DOCS"),
                               ("spreadwatch_position_short_strike", "DISTANCE_DOCS")):
        body = source.split(f"\n{table_name} = {{", 1)[1].split("\n}", 1)[0]
        names |= {prefix + k for k in re.findall(r"\"([a-z_]*)\": \"", body)}
    return names


def test_every_metric_a_panel_queries_is_documented_and_emitted():
    documented, emitted = documented_metrics(), emitted_metrics()
    used: set[str] = set()
    for _, _panel, target in prometheus_targets():
        used |= metric_names(target["expr"])
    board = load_dashboards()["spreadwatch.json"]
    for var in board["templating"]["list"]:
        query = var.get("query")
        used |= metric_names(query["query"] if isinstance(query, dict) else str(query or ""))
    spreadwatch = {n for n in used if n.startswith("spreadwatch_")}
    assert len(spreadwatch) > 30
    assert not spreadwatch - documented, f"not in the metrics contract (docs/metrics.md): {sorted(spreadwatch - documented)}"
    assert not spreadwatch - emitted, f"not emitted by collector.py: {sorted(spreadwatch - emitted)}"
    assert used - spreadwatch <= {"up", "ALERTS"}


def test_every_panel_has_a_datasource_and_queries_have_unique_ref_ids():
    for _, panel in all_panels():
        assert panel.get("datasource", {}).get("uid"), panel["title"]
        refs = [t["refId"] for t in panel.get("targets") or []]
        assert len(refs) == len(set(refs)), panel["title"]
        if panel["type"] != "alertGroups":
            assert refs, f"{panel['title']}: no query"


# ----------------------------------------------------------------------------------------- (b) provisioning


def test_datasources_are_provisioned_with_the_uids_the_dashboards_use():
    sources = datasources()
    by_uid = {ds["uid"]: ds for ds in sources}
    assert len(by_uid) == len(sources), "duplicate datasource uid"
    services = compose()["services"]

    prom = [ds for ds in sources if ds["type"] == "prometheus"]
    am = [ds for ds in sources if ds["type"] == "alertmanager"]
    assert len(prom) == 1 and len(am) == 1
    assert prom[0].get("isDefault") is True
    assert am[0]["jsonData"]["implementation"] == "prometheus"  # Prometheus's Alertmanager, not Grafana's
    for ds, service in ((prom[0], "prometheus"), (am[0], "alertmanager")):
        url = urlparse(ds["url"])
        assert url.hostname == service, f"{ds['name']}: {ds['url']} is not the compose service {service}"
        container_ports = {int(str(p).rsplit(":", 1)[-1]) for p in services[service].get("ports", [])}
        assert url.port in container_ports, f"{ds['name']}: port {url.port} not the service's {container_ports}"
        assert ds["access"] == "proxy"  # the browser never talks to Prometheus/Alertmanager directly

    refs = []
    for name, board in load_dashboards().items():
        for panel in panels_of(board):
            refs.append((f"{name}: {panel['title']}", panel.get("datasource")))
            refs += [(f"{name}: {panel['title']} {t.get('refId')}", t.get("datasource"))
                     for t in panel.get("targets") or []]
        refs += [(f"{name}: variable {v['name']}", v.get("datasource")) for v in board["templating"]["list"]]
    for where, ref in refs:
        if not ref:
            continue
        assert ref["uid"] in by_uid, f"{where}: datasource uid {ref['uid']} is not provisioned"
        assert by_uid[ref["uid"]]["type"] == ref["type"], where
    for _, panel in all_panels():
        if panel["type"] == "alertGroups":  # the panel picks its Alertmanager by datasource NAME
            assert panel["options"]["alertmanager"] == am[0]["name"]
            assert panel["datasource"]["uid"] == am[0]["uid"]


def test_the_dashboard_provider_reads_the_committed_dashboards_in_the_compose_mount():
    files = sorted((PROVISIONING / "dashboards").glob("*.y*ml"))
    assert files
    providers = []
    for path in files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc.get("apiVersion") == 1, path
        providers += doc["providers"]
    assert len(providers) == 1
    provider = providers[0]
    assert provider["type"] == "file"
    assert provider.get("allowUiUpdates") is False  # dashboards are code

    grafana = compose()["services"]["grafana"]
    mounts = {target: (source, mode) for source, target, mode in volume_mounts(grafana)}
    path = provider["options"]["path"]
    assert path in mounts, f"provider path {path} is not a Grafana volume mount: {sorted(mounts)}"
    source, mode = mounts[path]
    assert (ROOT / source).resolve() == DASHBOARDS.resolve() and mode == "ro"
    assert sorted(p.name for p in DASHBOARDS.glob("*.json")) == ["spreadwatch.json"]
    for kind in ("datasources", "dashboards"):
        source, mode = mounts[f"/etc/grafana/provisioning/{kind}"]
        assert (ROOT / source).resolve() == (PROVISIONING / kind).resolve() and mode == "ro"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path + "/") and (DASHBOARDS / home[len(path) + 1:]).is_file()


def test_grafana_admin_password_comes_from_a_secret_and_anonymous_access_is_off():
    spec = compose()
    grafana = spec["services"]["grafana"]
    env = grafana["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env, "a literal admin password in docker-compose.yml"
    password_file = env["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    assert password_file.startswith("/run/secrets/")
    secret = password_file.rsplit("/", 1)[1]
    assert secret in [s if isinstance(s, str) else s["source"] for s in grafana["secrets"]]
    assert "file" in spec["secrets"][secret]  # a file on the host (.env.example lists it; test_compose.py)
    assert str(env["GF_AUTH_ANONYMOUS_ENABLED"]).lower() == "false"
    assert str(env.get("GF_USERS_ALLOW_SIGN_UP", "false")).lower() == "false"
    assert not any(key.startswith("GF_AUTH_ANONYMOUS_ORG") for key in env)


def test_grafana_image_matches_the_sdk_the_generator_is_pinned_to():
    image = compose()["services"]["grafana"]["image"]
    grafana_version = image.rsplit(":", 1)[1]
    pin = re.search(r'grafana-foundation-sdk==[^"!]*!?([\d.]+)"',
                    (ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pin, "grafana-foundation-sdk is not pinned in pyproject.toml"
    assert grafana_version.split(".")[:2] == pin.group(1).split(".")[:2], (image, pin.group(0))


# ------------------------------------------------------------------------- (c) queries against real components


def grafana_macros(range_seconds: int) -> dict[str, str]:
    """Grafana's interval macros as it would expand them for this datasource: $__interval is the step
    (at least the datasource's timeInterval), $__rate_interval max($__interval + scrape, 4 x scrape)."""
    (prom,) = [ds for ds in datasources() if ds["type"] == "prometheus"]
    scrape = parse_duration(prom["jsonData"]["timeInterval"])
    interval = max(scrape, 1.0)
    rate = max(interval + scrape, 4 * scrape)
    return {"__rate_interval": f"{int(rate)}s", "__interval_ms": str(int(interval * 1000)),
            "__interval": f"{int(interval)}s", "__range_s": str(range_seconds), "__range_ms":
            str(range_seconds * 1000), "__range": f"{range_seconds}s"}


def substitute(expr: str, variables: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        assert name in variables, f"unknown variable ${name} in {expr}"
        return variables[name]

    out = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)
    assert "$" not in out, out
    return out


def cli(tmp_path: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "spreadwatch", *args], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 0, f"spreadwatch {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_every_panel_query_returns_data_from_a_real_prometheus_scraping_the_real_exporter(tmp_path, monkeypatch):
    monkeypatch.delenv("SPREADWATCH_CONFIG", raising=False)  # embedded defaults, whatever the caller's shell has
    monkeypatch.delenv("SPREADWATCH_DB", raising=False)
    monkeypatch.setenv("SPREADWATCH_NOW", REPLAY_START.isoformat())  # the CLI's "now": the replayed instant
    db = tmp_path / "book.db"

    # Two positions logged with the CLI; one closed (realized P&L), one left open (the positions panels).
    ids = []
    for _ in range(2):
        before = {p["id"] for p in json.loads(cli(tmp_path, "positions", "list", "--json", "--db", str(db)))}
        cli(tmp_path, "positions", "add", "--db", str(db), "--dte", "3", "--band", "P98", "--spread", "put_spread",
            "--contracts", "1", "--credit", "285", "--short-put", "19500", "--long-put", "19450")
        after = {p["id"] for p in json.loads(cli(tmp_path, "positions", "list", "--json", "--db", str(db)))}
        ids += sorted(after - before)
    assert len(ids) == 2
    cli(tmp_path, "positions", "close", ids[0], "--pnl", "100", "--db", str(db))
    cli(tmp_path, "positions", "update", ids[1], "--pnl", "40", "--db", str(db))

    # The exporter's loop, collector and HTTP server on the bundled replay day, stepped minute by minute on a
    # virtual clock until every part of the snapshot is in (market, scan with strikes, positions, portfolio) and a
    # setup is in its entry window; then it holds that instant while Prometheus scrapes it.
    # The bundled calendar starts in 2025: the replayed week gets its jobs report (2019-01-04) from events.extra, so
    # the scheduled-events table has a row.
    from spreadwatch.config import parse_config

    service = make_service(tmp_path, ReplayProvider(bundled_path("replay_sample.csv"), bundled=True), db=db,
                           start=REPLAY_START, tickers=("SPX",), grid=bundled_path(BUNDLED_GRID),
                           config=parse_config({"events": {"extra": {"jobs": ["2019-01-04"]}}}))
    smtp, slack = start_smtp_sink(), start_http_sink()
    am = prom = None
    try:
        with Running(service) as running:
            def full_snapshot() -> bool:
                samples = exposition_samples(scrape(running.url))
                names = {sample.name for sample in samples}
                return {"spreadwatch_price", "spreadwatch_opportunity_strike", "spreadwatch_position_pnl_dollars",
                        "spreadwatch_portfolio_realized_pnl_dollars"} <= names and any(
                    sample.name == "spreadwatch_opportunity_in_window" and sample.value == 1 for sample in samples)
            running.until(full_snapshot, within=14 * 60)  # before the window closes at 09:45 ET
            target = urlparse(running.url).netloc
            am = start_alertmanager(repo_routing(tmp_path, smtp.smarthost, slack.url + "/slack"), tmp_path,
                                    templates_dir=ROOT / "alertmanager" / "templates")
            prom = start_prometheus(ROOT / "prometheus", tmp_path, targets={"spreadwatch": [target]},
                                    alertmanager_urls=[am.url])
            prom.wait_for_up("spreadwatch")
            wait_until(lambda: prom.query('count_over_time(up{job="spreadwatch"}[1m]) >= 6'), 60, "six scrapes")
            check_panel_queries(prom)
            check_alert_groups_panel(am)
    finally:
        for part in (prom, am):
            if part is not None:
                part.stop()
        smtp.stop()
        slack.stop()


def check_panel_queries(prom) -> None:
    """Every Prometheus panel query returns data (with legends and table columns that fit), for one ticker and
    for All; an in-window setup to highlight."""
    end = float(prom.query("time()")[0])  # Prometheus's own clock: its samples are stamped with it
    window = 30
    # The ticker variable: Grafana's label_values(selector, ticker) through the labels API.
    board = load_dashboards()["spreadwatch.json"]
    (var,) = [v for v in board["templating"]["list"] if v["name"] == "ticker"]
    selector, label = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"]).groups()
    tickers = prom.label_values(label, selector)
    assert tickers == ["SPX"], tickers

    failures: list[str] = []
    checked = 0
    for ticker_value in ("SPX", var["allValue"]):  # one ticker selected, and "All"
        variables = {"ticker": ticker_value, **grafana_macros(window)}
        for _, panel, target in prometheus_targets():
            expr = substitute(target["expr"], variables)
            where = f"{panel['title']} [{target['refId']}] ticker={ticker_value}: {expr}"
            try:
                if target.get("instant"):
                    result = prom.query(expr, at=end)
                    has_data = bool(result)
                else:
                    result = prom.query_range(expr, end - window, end, 1)
                    has_data = any(series["values"] for series in result)
            except RuntimeError as exc:
                failures.append(f"{where}: ERROR {exc}")
                continue
            checked += 1
            if not has_data:
                failures.append(f"{where}: no data")
                continue
            failures += legend_problems(where, target, result)
            failures += table_problems(where, panel, target, result)
    assert not failures, "panel queries failing against the real stack:\n" + "\n".join(failures)
    assert checked == 2 * len(prometheus_targets()) > 80

    # The opportunities table has something to highlight: the replayed instant is inside the entry hours.
    in_window = prom.query('spreadwatch_opportunity_in_window == 1', at=end)
    assert in_window, "no opportunity in its entry window at the bundled day's open"



def check_alert_groups_panel(am) -> None:
    # The Alertmanager panel: the groups Grafana's alertGroups panel reads (GET /api/v2/alerts/groups via the
    # datasource proxy) hold the always-firing watchdog, delivered by this Prometheus through the repo's rules
    # and routing; the panel's label filter is empty (every group).
    (groups_panel,) = [p for _, p in all_panels() if p["type"] == "alertGroups"]
    assert groups_panel["options"]["labels"] == ""

    def watchdog_group():
        groups = requests.get(f"{am.url}/api/v2/alerts/groups", timeout=5).json()
        return [g for g in groups for a in g["alerts"]
                if a["labels"].get("alertname") == "SpreadwatchWatchdog" and a["status"]["state"] == "active"]

    (group,) = wait_until(watchdog_group, 30, "the watchdog in Alertmanager's alert groups")
    assert group["receiver"]["name"] == "deadman"


def legend_problems(where: str, target: dict, result: list[dict]) -> list[str]:
    """A {{label}} in the legend must be a label of at least one returned series (else Grafana shows it blank)."""
    labels = re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat") or "")
    if target["expr"].startswith("ALERTS"):
        labels = [name for name in labels if name in ("alertname", "alertstate")]  # the rest depend on the alert
    present = set().union(*(series["metric"] for series in result))
    return [f"{where}: legend label {name!r} is in no series" for name in labels if name not in present]


def table_problems(where: str, panel: dict, target: dict, result: list[dict]) -> list[str]:
    """A table query returns exactly the label columns the organize transformation names (no __name__, instance
    or job columns that would stop `merge` joining the frames into one row per item)."""
    if target.get("format") != "table":
        return []
    (organize,) = [t for t in panel["transformations"] if t["id"] == "organize"]
    named = {*organize["options"]["renameByName"], *organize["options"]["excludeByName"]}
    columns = {name for name in named if not name.startswith("Value #") and name != "Time"}
    problems = []
    for series in result:
        if set(series["metric"]) != columns:
            problems.append(f"{where}: columns {sorted(series['metric'])}, the table expects {sorted(columns)}")
            break
    return problems
