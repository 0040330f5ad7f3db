"""Dashboards as code: builds spreadwatch's Grafana dashboards with grafana-foundation-sdk and writes them as JSON.

    python grafana/generate.py           # (re)write grafana/dashboards/*.json
    python grafana/generate.py --check   # regenerate in memory; exit 1 and name the files that differ
    python grafana/generate.py --out DIR # write them into DIR instead (tests/test_grafana.py diffs that)

The SDK release is pinned (pyproject: grafana-foundation-sdk==1769699998!10.1.0) to the Grafana the compose file
runs (grafana/grafana:10.1.x): its models are that version's dashboard schema. Every query uses only the metrics in
the metrics contract (docs/metrics.md) (plus Prometheus's own `up` and `ALERTS`); tests/test_grafana.py checks that, and runs every panel's
query against a real Prometheus scraping the exporter on replay data.

This module owns the dashboards' content; it does no I/O except writing (or comparing) the files in
grafana/dashboards/ (or the --out directory).

Table panels query `max by (<the metric's own labels>) (...)`: that drops `__name__`, `instance` and `job`, so the
`merge` transformation joins the per-metric frames into one row per opportunity/position and no scrape label
turns into a column.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import alertgroups, common, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT_DIR = Path(__file__).resolve().parent / "dashboards"

# Fixed datasource uids: provisioning (grafana/provisioning/datasources/) creates them with these uids.
PROMETHEUS = dm.DataSourceRef(type_val="prometheus", uid="prometheus")
ALERTMANAGER = dm.DataSourceRef(type_val="alertmanager", uid="alertmanager")
ALERTMANAGER_NAME = "Alertmanager"  # the alert groups panel picks its Alertmanager by datasource name

TICKER = 'ticker=~"$ticker"'
OPP_LABELS = "ticker, id, dte, band, spread_type, flow_mode, width, entry_time_et"  # collector.OPPORTUNITY_LABELS
POS_LABELS = "position_id, ticker, spread_type, band"  # collector.POSITION_LABELS

# spreadwatch_market_session is a state set (1 for the current phase): as one number for the Market stat.
SESSION_CODES = {"closed": 0, "pre": 1, "open": 2, "after": 3}
SESSION_EXPR = " + ".join(f'{code} * sum(spreadwatch_market_session{{session="{name}"}})'
                          for name, code in SESSION_CODES.items())
SESSION_DISPLAY = {"closed": ("closed", "text"), "pre": ("pre-market", "blue"), "open": ("open", "green"),
                   "after": ("after hours", "purple")}

# VIX regime colours (the default regime.boundaries: very_low < 12 <= low < 16 <= medium < 20 <= high < 30 <= extreme).
REGIMES = ("very_low", "low", "medium", "high", "extreme")
REGIME_COLOURS = ("blue", "green", "yellow", "orange", "red")
VIX_BOUNDARIES = (12.0, 16.0, 20.0, 30.0)


# ------------------------------------------------------------------------------------------------ helpers


def q(expr: str, legend: str = "", ref: str = "A", instant: bool = False, table_format: bool = False) -> prom.Dataquery:
    query = prom.Dataquery().expr(expr).ref_id(ref).datasource(PROMETHEUS)
    if legend:
        query = query.legend_format(legend)
    query = query.instant() if instant else query.range()
    if table_format:
        query = query.format(PromQueryFormat.TABLE)
    return query


def steps(*pairs: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=value, color=colour) for value, colour in pairs])


def value_map(options: dict[str, tuple[str, str]]) -> dm.ValueMap:
    return dm.ValueMap(options={key: dm.ValueMappingResult(text=text, color=colour, index=i)
                                for i, (key, (text, colour)) in enumerate(options.items())})


VIX_STEPS = steps((None, REGIME_COLOURS[0]), *zip(VIX_BOUNDARIES, REGIME_COLOURS[1:], strict=True))
REGIME_LEVEL_STEPS = steps((None, REGIME_COLOURS[0]), *((float(i), c) for i, c in enumerate(REGIME_COLOURS) if i))
REGIME_MAP = value_map({str(i): (name, colour) for i, (name, colour) in enumerate(zip(REGIMES, REGIME_COLOURS,
                                                                                          strict=True))})
PNL_STEPS = steps((None, "red"), (0.0, "green"))


def last_value() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat_panel(title: str, description: str, *targets: prom.Dataquery, unit: str = "none", w: int = 3,
               h: int = 4, decimals: float | None = None) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).datasource(PROMETHEUS).unit(unit).span(w).height(h)
             .reduce_options(last_value()).graph_mode(cm.BigValueGraphMode.NONE)
             .color_mode(cm.BigValueColorMode.VALUE))
    for target in targets:
        panel = panel.with_target(target)
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def override(name: str, **props: object) -> tuple[dm.MatcherConfig, list[dm.DynamicConfigValue]]:
    return (dm.MatcherConfig(id_val="byName", options=name),
            [dm.DynamicConfigValue(id_val=key.replace("__", "."), value=value) for key, value in props.items()])


def organize(rename: dict[str, str], exclude: tuple[str, ...] = ("Time",)) -> dm.DataTransformerConfig:
    return dm.DataTransformerConfig(id_val="organize", options={
        "excludeByName": {name: True for name in exclude},
        "indexByName": {name: i for i, name in enumerate(rename)},
        "renameByName": rename,
    })


MERGE = dm.DataTransformerConfig(id_val="merge", options={})


# ----------------------------------------------------------------------------------------- market context


def market_row() -> list:
    return [
        stat_panel("Price", "Underlying level (index points) of the selected ticker; blank when unknown or stale.",
                   q(f"spreadwatch_price{{{TICKER}}}", "{{ticker}}"), decimals=2).color_mode(
            cm.BigValueColorMode.NONE),
        stat_panel("Change", "Change vs the previous session's close.",
                   q(f"spreadwatch_change_ratio{{{TICKER}}}", "{{ticker}}"), unit="percentunit", decimals=2)
        .thresholds(PNL_STEPS),
        stat_panel("VIX", "The VIX level, coloured by regime: blue < 12 (very low), green < 16 (low), yellow < 20 "
                   "(medium), orange < 30 (high), red extreme.", q("spreadwatch_vix", "VIX"), decimals=2)
        .thresholds(VIX_STEPS),
        stat_panel("Regime", "Current VIX regime (with hysteresis); blank when the VIX is unknown.",
                   q("spreadwatch_regime_level", "regime")).thresholds(REGIME_LEVEL_STEPS).mappings([REGIME_MAP])
        .color_mode(cm.BigValueColorMode.BACKGROUND),
        stat_panel("IV rank / percentile", "IV rank and IV percentile of the ticker's vol index over 252 sessions.",
                   q(f"spreadwatch_iv_rank_ratio{{{TICKER}}}", "rank {{ticker}}"),
                   q(f"spreadwatch_iv_percentile_ratio{{{TICKER}}}", "pct {{ticker}}", ref="B"),
                   unit="percentunit", decimals=0).color_mode(cm.BigValueColorMode.NONE),
        stat_panel("Volume ratio", "Cumulative volume so far vs the 20-session mean at this time of day.",
                   q(f"spreadwatch_volume_ratio{{{TICKER}}}", "{{ticker}}"), decimals=2)
        .thresholds(steps((None, "text"), (1.5, "orange"))),
        stat_panel("Market", "Current market phase (XNYS calendar: closed, pre-market, open, after hours) and "
                   "whether the preferred entry hours are open.",
                   q(SESSION_EXPR, "market"), q("spreadwatch_entry_window_open", "entry window", ref="B"))
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .mappings([value_map({str(SESSION_CODES[name]): SESSION_DISPLAY[name] for name in SESSION_CODES})])
        .override_by_name("entry window", [dm.DynamicConfigValue(id_val="mappings", value=[
            value_map({"0": ("closed", "text"), "1": ("open", "green")})])])
        .color_mode(cm.BigValueColorMode.VALUE),
        stat_panel("To close", "Minutes to the session close; blank when the market is closed.",
                   q("spreadwatch_market_seconds_to_close / 60", "minutes"), unit="m", decimals=0)
        .no_value("closed").color_mode(cm.BigValueColorMode.NONE),
    ]


# ----------------------------------------------------------------------------------------- opportunities

OPP_VALUES = (  # (metric suffix, column title)
    ("rank", "Rank"), ("in_window", "In window"), ("blocked_by_risk", "Blocked by risk"), ("score", "Score"),
    ("win_ratio", "Win rate"), ("roi_ratio", "ROI"), ("credit_dollars", "Credit / contract"),
    ("risk_dollars", "Risk / contract"), ("held_back", "Held back"),
)
LEGS = ("short_put", "long_put", "short_call", "long_call")


def opportunities_table() -> table.Panel:
    refs = iter("ABCDEFGHIJKLMNOP")
    panel = (table.Panel().title("Top opportunities").description(
        "Regime-filtered grid configs passing every filter, best first (in-window ones first). In window: inside "
        "the entry tolerance of its entry time, in the preferred hours, on an open session. Blocked: taking it "
        "would break a risk limit. Strikes: suggested from the current price and the band's percentile move.")
        .datasource(PROMETHEUS).span(24).height(10))
    rename = {"ticker": "Ticker", "dte": "DTE", "spread_type": "Spread", "band": "Band", "flow_mode": "Flow",
              "width": "Width", "entry_time_et": "Entry (ET)"}
    for suffix, title in OPP_VALUES:
        ref = next(refs)
        panel = panel.with_target(q(f"max by ({OPP_LABELS}) (spreadwatch_opportunity_{suffix}{{{TICKER}}})", ref=ref,
                                    instant=True, table_format=True))
        rename[f"Value #{ref}"] = title
    for leg in LEGS:
        ref = next(refs)
        panel = panel.with_target(q(f'max by ({OPP_LABELS}) (spreadwatch_opportunity_strike{{{TICKER}, leg="{leg}"}})',
                                    ref=ref, instant=True, table_format=True))
        rename[f"Value #{ref}"] = leg.replace("_", " ")
    panel = (panel.with_transformation(MERGE).with_transformation(organize(rename, ("Time", "id")))
             .show_header(True).sort_by([common.TableSortByFieldState().display_name("Rank").desc(False)]))
    yes_no = {"0": ("", "transparent"), "1": ("yes", "green")}
    for field, props in (
        ("In window", {"mappings": [value_map(yes_no)], "custom__cellOptions": {"type": "color-background"}}),
        ("Blocked by risk", {"mappings": [value_map({"0": ("", "transparent"), "1": ("blocked", "red")})],
                             "custom__cellOptions": {"type": "color-background"}}),
        ("Held back", {"mappings": [value_map({"0": ("", "transparent"), "1": ("event day", "orange")})],
                       "custom__cellOptions": {"type": "color-background"}}),
        ("Win rate", {"unit": "percentunit", "decimals": 1}),
        ("ROI", {"unit": "percentunit", "decimals": 1}),
        ("Credit / contract", {"unit": "currencyUSD"}),
        ("Risk / contract", {"unit": "currencyUSD"}),
        ("Score", {"decimals": 1}),
    ):
        panel = panel.with_override(*override(field, **props))
    return panel


def events_table() -> table.Panel:
    """The scheduled events of today and the next 7 days, with what each kind's policy does."""
    panel = (table.Panel().title("Scheduled events").description(
        "FOMC decisions, CPI, the jobs report, monthly option expiry and early closes, today and the next 7 days "
        "(the event calendar: events.file, events.extra). Policy: hold_day holds new entries back that day, "
        "hold_through holds back entries whose expiry reaches the day, mark only shows it. Held-back setups are "
        "marked in the opportunities table and never notified.")
        .datasource(PROMETHEUS).span(12).height(6)
        .with_target(q("max by (date, kind, name, policy) (spreadwatch_event_info)", instant=True,
                       table_format=True))
        .with_transformation(organize({"date": "Date (ET)", "name": "Event", "kind": "Kind", "policy": "Policy"}))
        .show_header(True).sort_by([common.TableSortByFieldState().display_name("Date (ET)").desc(False)]))
    return panel.with_override(*override("Value", custom__hidden=True))  # always 1: the row is the event


def event_countdown() -> stat.Panel:
    return stat_panel("Days to the next event", "Calendar days to the next FOMC decision, CPI release, jobs report "
                      "and monthly expiry (0: today).",
                      q("spreadwatch_event_next_days", "{{kind}}"), w=12, h=6)


# -------------------------------------------------------------------------------------------- portfolio


def portfolio_row() -> list:
    return [
        stat_panel("Open count", "Open positions against risk.max_positions.",
                   q('spreadwatch_portfolio_positions{status="open"}', "open"),
                   q("spreadwatch_portfolio_max_positions", "limit", ref="B"), w=4)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME).color_mode(cm.BigValueColorMode.NONE),
        stat_panel("Capital at risk", "Max risk of the open positions against risk.max_total_risk.",
                   q("spreadwatch_portfolio_risk_dollars", "at risk"),
                   q("spreadwatch_portfolio_max_risk_dollars", "limit", ref="B"), unit="currencyUSD", w=5)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME).color_mode(cm.BigValueColorMode.NONE),
        stat_panel("Risk used", "Capital at risk / its limit: orange from 80 %, red at or over the limit.",
                   q("spreadwatch_portfolio_risk_dollars / spreadwatch_portfolio_max_risk_dollars", "used"),
                   unit="percentunit", decimals=0, w=5)
        .thresholds(steps((None, "green"), (0.8, "orange"), (1.0, "red"))),
        stat_panel("Unrealized P&L", "Sum of the last P&L logged on open positions.",
                   q("spreadwatch_portfolio_unrealized_pnl_dollars", "unrealized"), unit="currencyUSD", w=5)
        .thresholds(PNL_STEPS),
        stat_panel("Realized P&L", "Sum of the P&L of closed positions.",
                   q("spreadwatch_portfolio_realized_pnl_dollars", "realized"), unit="currencyUSD", w=5)
        .thresholds(PNL_STEPS),
    ]


POS_VALUES = (  # (query of the position's value, column title)
    ("spreadwatch_position_pnl_dollars", "P&L"),
    ("spreadwatch_position_exit_pnl_dollars", "Exit P&L"),
    (None, "Exit P&L from"),  # EXIT_SOURCE_EXPR
    ("spreadwatch_position_exit_pnl_age_seconds", "Exit P&L age"),
    ('spreadwatch_position_estimated_pnl_dollars{source="model", __T__}', "Estimated P&L (model)"),
    ("spreadwatch_position_profit_target_dollars", "Target"), ("spreadwatch_position_stop_loss_dollars", "Stop"),
    ("spreadwatch_position_pnl_to_credit_ratio", "P&L / credit"), ("spreadwatch_position_credit_dollars", "Credit"),
    ("spreadwatch_position_risk_dollars", "Max risk"), ("spreadwatch_position_sessions_to_expiry", "Sessions to expiry"),
    ("spreadwatch_position_time_exit_sessions", "Time exit at"), ("spreadwatch_position_pnl_age_seconds", "P&L age"),
    ('spreadwatch_position_otm_probability_ratio{source="model", __T__}', "P(short strikes OTM, model)"),
)
# The exit P&L's source as a number for a table cell (a label column would stop `merge` joining the frames): the
# exporter exports exactly one exit P&L series per position, its `source` one of these.
EXIT_SOURCES = ("logged", "market", "model")
EXIT_SOURCE_EXPR = " or ".join(f'{code} + 0 * spreadwatch_position_exit_pnl_dollars{{source="{name}", {TICKER}}}'
                               for code, name in enumerate(EXIT_SOURCES))
EXIT_SOURCE_DISPLAY = {"logged": "green", "market": "blue", "model": "orange"}


def _position_query(metric: str | None) -> str:
    if metric is None:
        inner = EXIT_SOURCE_EXPR
    elif "__T__" in metric:
        inner = metric.replace("__T__", TICKER)
    else:
        inner = f"{metric}{{{TICKER}}}"
    return f"max by ({POS_LABELS}) ({inner})"


def positions_table() -> table.Panel:
    panel = (table.Panel().title("Open positions").description(
        "Open positions with their last logged P&L and the exit P&L the profit target and the stop evaluate "
        "(exits.pnl_sources: the logged P&L while fresh, else the market mark, else the model's estimate; "
        "its source and age beside it), the model's estimated P&L, the thresholds (dollars, whole position), "
        "and trading sessions to expiry against the time exit. Update P&L with "
        "`spreadwatch positions update ID --pnl N`.").datasource(PROMETHEUS).span(24).height(7))
    rename = {"position_id": "ID", "ticker": "Ticker", "spread_type": "Spread", "band": "Band"}
    for ref, (metric, title) in zip("ABCDEFGHIJKLMNOP", POS_VALUES, strict=False):
        panel = panel.with_target(q(_position_query(metric), ref=ref, instant=True, table_format=True))
        rename[f"Value #{ref}"] = title
    panel = (panel.with_transformation(MERGE).with_transformation(organize(rename)).show_header(True)
             .sort_by([common.TableSortByFieldState().display_name("Sessions to expiry").desc(False)]))
    pnl_cell = {"unit": "currencyUSD", "custom__cellOptions": {"type": "color-text"},
                "thresholds": steps((None, "red"), (0.0, "green")).build()}
    sources = value_map({str(code): (name, EXIT_SOURCE_DISPLAY[name]) for code, name in enumerate(EXIT_SOURCES)})
    for field, props in (
        ("P&L", pnl_cell), ("Exit P&L", pnl_cell), ("Estimated P&L (model)", pnl_cell),
        ("Exit P&L from", {"mappings": [sources], "custom__cellOptions": {"type": "color-text"}}),
        ("Target", {"unit": "currencyUSD"}), ("Stop", {"unit": "currencyUSD"}),
        ("Credit", {"unit": "currencyUSD"}), ("Max risk", {"unit": "currencyUSD"}),
        ("P&L / credit", {"unit": "percentunit"}), ("P&L age", {"unit": "s"}), ("Exit P&L age", {"unit": "s"}),
        ("P(short strikes OTM, model)", {"unit": "percentunit", "decimals": 1}),
    ):
        panel = panel.with_override(*override(field, **props))
    return panel


LEG_LABELS = f"{POS_LABELS}, leg"
STRIKE_VALUES = (  # (metric, column title), per position and short leg
    ("spreadwatch_position_short_strike", "Strike"),
    ("spreadwatch_position_short_strike_distance_points", "Distance (points)"),
    ("spreadwatch_position_short_strike_distance_ratio", "Distance / price"),
    ("spreadwatch_position_short_strike_distance_expected_moves", "Distance (expected moves)"),
    ("spreadwatch_position_short_strike_near_expected_moves", "Near within"),
    ('spreadwatch_position_short_delta{source="model", __T__}', "Short delta (model)"),
)


def short_strikes_table() -> table.Panel:
    panel = (table.Panel().title("Distance to the short strikes").description(
        "Each open position's short strikes and how far the price is from them: in index points (negative once "
        "the price is through the strike), as a fraction of the price, and in the vol index's expected moves to "
        "expiry. SpreadwatchShortStrikeNear fires within the 'Near within' distance, SpreadwatchShortStrikeBreached "
        "through the strike. Short delta: the model's, per unit of the index.")
        .datasource(PROMETHEUS).span(12).height(8))
    rename = {"position_id": "ID", "ticker": "Ticker", "spread_type": "Spread", "band": "Band", "leg": "Leg"}
    for ref, (metric, title) in zip("ABCDEFGH", STRIKE_VALUES, strict=False):
        inner = metric.replace("__T__", TICKER) if "__T__" in metric else f"{metric}{{{TICKER}}}"
        panel = panel.with_target(q(f"max by ({LEG_LABELS}) ({inner})", ref=ref, instant=True, table_format=True))
        rename[f"Value #{ref}"] = title
    panel = (panel.with_transformation(MERGE).with_transformation(organize(rename)).show_header(True)
             .sort_by([common.TableSortByFieldState().display_name("Distance (expected moves)").desc(False)]))
    em = {"decimals": 2, "custom__cellOptions": {"type": "color-background"},
          "thresholds": steps((None, "red"), (0.0, "orange"), (0.5, "transparent")).build()}
    for field, props in (
        ("Distance (expected moves)", em), ("Distance / price", {"unit": "percentunit", "decimals": 2}),
        ("Distance (points)", {"decimals": 1}), ("Near within", {"decimals": 2}), ("Short delta (model)", {"decimals": 3}),
    ):
        panel = panel.with_override(*override(field, **props))
    return panel


def distance_timeseries() -> timeseries.Panel:
    dashed = [dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})]
    return (timeseries.Panel().title("Short strike distance (expected moves)").description(
        "Distance from the price to each short strike in the vol index's expected moves to expiry, with the "
        "distance at which SpreadwatchShortStrikeNear fires (dashed). Below 0: the strike is breached.")
        .datasource(PROMETHEUS).span(12).height(8)
        .with_target(q(f"spreadwatch_position_short_strike_distance_expected_moves{{{TICKER}}}",
                       "{{position_id}} {{leg}}"))
        .with_target(q(f"spreadwatch_position_short_strike_near_expected_moves{{{TICKER}}}",
                       "{{position_id}} {{leg}} near", ref="B"))
        .override_by_regexp(".* near$", dashed))


def pnl_timeseries() -> timeseries.Panel:
    dashed = [dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})]
    dotted = [dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dot", "dash": [2, 6]})]
    return (timeseries.Panel().title("Position P&L vs target and stop").description(
        "Each open position's logged P&L and its estimated P&L (dotted; the source says which estimate: the "
        "model's, or a market mark) with its profit target and stop lines (dashed).")
        .datasource(PROMETHEUS).unit("currencyUSD").span(12).height(8)
        .with_target(q(f"spreadwatch_position_pnl_dollars{{{TICKER}}}", "{{position_id}} P&L"))
        .with_target(q(f"spreadwatch_position_estimated_pnl_dollars{{{TICKER}}}",
                       "{{position_id}} estimated ({{source}})", ref="D"))
        .with_target(q(f"spreadwatch_position_profit_target_dollars{{{TICKER}}}", "{{position_id}} target", ref="B"))
        .with_target(q(f"spreadwatch_position_stop_loss_dollars{{{TICKER}}}", "{{position_id}} stop", ref="C"))
        .override_by_regexp(".* (target|stop)$", dashed)
        .override_by_regexp(r".* estimated \(.*\)$", dotted))


def portfolio_pnl_timeseries() -> timeseries.Panel:
    return (timeseries.Panel().title("P&L over time").description(
        "Unrealized (open positions) and realized (closed) P&L of the book.")
        .datasource(PROMETHEUS).unit("currencyUSD").span(12).height(8)
        .with_target(q("spreadwatch_portfolio_unrealized_pnl_dollars", "unrealized"))
        .with_target(q("spreadwatch_portfolio_realized_pnl_dollars", "realized", ref="B"))
        .with_target(q("spreadwatch_portfolio_unrealized_pnl_dollars + spreadwatch_portfolio_realized_pnl_dollars",
                       "total", ref="C")))


# --------------------------------------------------------------------------------------------- alerts


def alert_groups() -> alertgroups.Panel:
    return (alertgroups.Panel().title("Firing alerts (Alertmanager)").description(
        "Alert groups Alertmanager holds now, as routed (the always-firing SpreadwatchWatchdog proves the "
        "pipeline works). Reads the Alertmanager datasource directly: no query.")
        .datasource(ALERTMANAGER).alertmanager(ALERTMANAGER_NAME).labels("").expand_all(True).span(10).height(9))


def recent_alerts() -> statetimeline.Panel:
    return (statetimeline.Panel().title("Recent alerts").description(
        "Prometheus's ALERTS series for the spreadwatch rules over the time range, one row per alert and state "
        "(pending, then firing).")
        .datasource(PROMETHEUS).span(14).height(9)
        .with_target(q('ALERTS{alertname=~"Spreadwatch.*"}',
                       "{{alertname}} {{alertstate}} {{ticker}} {{id}}{{position_id}}"))
        .show_value(cm.VisibilityMode.NEVER).merge_values(True)
        .mappings([value_map({"1": ("active", "red")})]))


# ------------------------------------------------------------------------------------------- health


def health_row() -> list:
    up_map = value_map({"0": ("down", "red"), "1": ("up", "green")})
    return [
        stat_panel("Exporter", "Prometheus's scrape of the exporter (up).", q('up{job="spreadwatch"}', "{{instance}}"),
                   w=4).mappings([up_map]).color_mode(cm.BigValueColorMode.BACKGROUND),
        stat_panel("Data sources", "Whether the last fetch of each symbol gave a valid value.",
                   q("spreadwatch_source_up", "{{source}}"), w=8).mappings([up_map])
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME).color_mode(cm.BigValueColorMode.BACKGROUND),
        stat_panel("Grid", "Rows loaded from the grid file (impossible rows skipped) and the file's age.",
                   q("spreadwatch_grid_rows", "rows"), q("spreadwatch_grid_skipped_rows", "skipped", ref="B"),
                   w=6).text_mode(cm.BigValueTextMode.VALUE_AND_NAME).color_mode(cm.BigValueColorMode.NONE),
        stat_panel("Grid age", "Age of the grid file on the exporter's clock.",
                   q("spreadwatch_grid_age_seconds", "age"), unit="s", w=6).color_mode(cm.BigValueColorMode.NONE),
        (timeseries.Panel().title("Data age").description(
            "Age of the newest valid value of each symbol; the red line is the staleness bound "
            "(market.stale_after_seconds): above it the value is unknown and SpreadwatchMarketDataStale fires.")
         .datasource(PROMETHEUS).unit("s").span(8).height(7)
         .with_target(q("spreadwatch_source_age_seconds", "{{source}}"))
         .with_target(q("spreadwatch_stale_after_seconds", "stale after", ref="B"))
         .override_by_name("stale after", [dm.DynamicConfigValue(id_val="color",
                                                                 value={"mode": "fixed", "fixedColor": "red"})])),
        (timeseries.Panel().title("Fetch errors").description("Failed fetches per symbol and kind.")
         .datasource(PROMETHEUS).unit("short").span(8).height(7)
         .with_target(q("sum by (source, kind) (increase(spreadwatch_source_errors_total[$__rate_interval]))",
                        "{{source}} {{kind}}"))
         .with_target(q("sum by (task) (increase(spreadwatch_task_errors_total[$__rate_interval]))",
                        "task {{task}}", ref="B"))),
        (timeseries.Panel().title("Task age").description(
            "Seconds since each loop task (market, scan, positions) last succeeded.")
         .datasource(PROMETHEUS).unit("s").span(8).height(7)
         .with_target(q("spreadwatch_task_age_seconds", "{{task}}"))),
    ]


# ------------------------------------------------------------------------------------------- history


def regime_history() -> list:
    return [
        (statetimeline.Panel().title("Regime history").description("The VIX regime over the time range.")
         .datasource(PROMETHEUS).span(12).height(6)
         .with_target(q("spreadwatch_regime_level", "regime"))
         .thresholds(REGIME_LEVEL_STEPS).mappings([REGIME_MAP])
         .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))),
        (timeseries.Panel().title("VIX and regime boundaries").description(
            "The VIX with the regime boundaries 12 / 16 / 20 / 30 as coloured threshold lines.")
         .datasource(PROMETHEUS).span(12).height(6)
         .with_target(q("spreadwatch_vix", "VIX"))
         .thresholds(VIX_STEPS)
         .thresholds_style(common.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.LINE))),
    ]


# ------------------------------------------------------------------------------------------- dashboard


# The watched tickers: spreadwatch_opportunities has one series per scanned ticker even while its price is
# unknown or stale (spreadwatch_price is then absent), so the variable does not empty when a source goes down.
TICKER_VALUES = 'label_values({__name__=~"spreadwatch_(price|opportunities)"}, ticker)'


def ticker_variable() -> dash.QueryVariable:
    return (dash.QueryVariable("ticker").label("Ticker").datasource(PROMETHEUS)
            .query({"query": TICKER_VALUES, "refId": "PrometheusVariableQueryEditor-VariableQuery"})
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(".*"))


def main_dashboard() -> dash.Dashboard:
    board = (dash.Dashboard("spreadwatch").uid("spreadwatch").description(
        "Index credit spreads: market context, opportunities in their entry window, the position book and its "
        "exits, alerts and data health. Alert-only: nothing here trades. Generated by grafana/generate.py.")
        .tags(["spreadwatch"]).refresh("30s").time("now-6h", "now").timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR).editable()
        .with_variable(ticker_variable())
        .link(dash.DashboardLink("Runbook").type(dm.DashboardLinkType.LINK)
              .url("https://github.com/spreadwatch/spreadwatch/blob/main/RUNBOOK.md").target_blank(True)))
    board = board.with_row(dash.Row("Market context"))
    for panel in market_row():
        board = board.with_panel(panel)
    board = board.with_row(dash.Row("Opportunities"))
    board = board.with_panel(opportunities_table())
    board = board.with_panel(events_table()).with_panel(event_countdown())
    board = board.with_row(dash.Row("Portfolio"))
    for panel in portfolio_row():
        board = board.with_panel(panel)
    board = board.with_panel(positions_table())
    board = board.with_panel(short_strikes_table()).with_panel(distance_timeseries())
    board = board.with_panel(pnl_timeseries()).with_panel(portfolio_pnl_timeseries())
    board = board.with_row(dash.Row("Alerts"))
    board = board.with_panel(alert_groups()).with_panel(recent_alerts())
    board = board.with_row(dash.Row("History"))
    for panel in regime_history():
        board = board.with_panel(panel)
    board = board.with_row(dash.Row("Data health"))
    for panel in health_row():
        board = board.with_panel(panel)
    return board


DASHBOARDS = {"spreadwatch.json": main_dashboard}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard (stable: sorted keys, 2-space indent, trailing newline)."""
    out = {}
    for name, build in DASHBOARDS.items():
        model = build().build()
        text = json.dumps(model, cls=JSONEncoder, sort_keys=True, indent=2)
        out[name] = json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="regenerate in memory and exit 1 when a committed file differs")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write the dashboards into DIR instead of grafana/dashboards/")
    args = parser.parse_args(argv)
    rendered = render()
    if args.check:
        stale = [name for name, text in rendered.items()
                 if not (OUT_DIR / name).exists() or (OUT_DIR / name).read_text(encoding="utf-8") != text]
        extra = sorted(p.name for p in OUT_DIR.glob("*.json") if p.name not in rendered) if OUT_DIR.exists() else []
        for name in stale:
            print(f"grafana/dashboards/{name} differs from the generator: run python grafana/generate.py",
                  file=sys.stderr)
        for name in extra:
            print(f"grafana/dashboards/{name} is not produced by the generator", file=sys.stderr)
        return 1 if stale or extra else 0
    out_dir = args.out or OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (out_dir / name).write_bytes(text.encode("utf-8"))  # bytes: no newline translation on any platform
        print(f"wrote {out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
