"""Scheduled market events: the bundled calendar (its dates against the exchange calendar and the publishers' rules
of thumb), the hold-back rule per policy, one-line errors for a missing or malformed file, and the events shown by
`scan`, `status` and /metrics."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from spreadwatch.config import bundled_path, parse_config
from spreadwatch.domain.events import Event, EventCalendar, monthly_expiries
from spreadwatch.edges.cli import cli
from spreadwatch.edges.eventfile import load_event_calendar, read_event_file
from spreadwatch.errors import DataError

BUNDLED = bundled_path("events.csv")
OPEN = "2019-01-02T14:35:00Z"  # the bundled replay day, in its first entry window


def bundled_events() -> list[Event]:
    return read_event_file(BUNDLED)


# ---------------------------------------------------------------------------------------------- the bundled file


def test_the_bundled_calendar_names_its_sources_and_what_is_not_published():
    text = BUNDLED.read_text(encoding="utf-8")
    for source in ("Federal Reserve Board", "federalreserve.gov", "Bureau of Labor Statistics", "bls.gov",
                   "NYSE Group", "third Friday"):
        assert source in text
    # Each kind says what its dates were checked against; the BLS had not published 2027 dates.
    for checked in ("news.release/archives/cpi_", "news.release/archives/empsit_", "cps/publications/release-calendar",
                    "schedule/news_release/cpi.htm", "schedule/news_release/empsit.htm"):
        assert checked in text
    assert "2027 CPI and Employment Situation dates" in text


def test_the_bundled_calendar_counts_per_kind_and_year():
    counts: dict[tuple[str, int], int] = {}
    for e in bundled_events():
        counts[(e.kind, e.day.year)] = counts.get((e.kind, e.day.year), 0) + 1
    assert {y: counts[("fomc", y)] for y in (2025, 2026, 2027)} == {2025: 8, 2026: 8, 2027: 8}
    # 2025: the October CPI and jobs report were cancelled (the 2025 lapse in appropriations).
    assert {y: counts.get(("cpi", y), 0) for y in (2025, 2026, 2027)} == {2025: 11, 2026: 12, 2027: 0}
    assert {y: counts.get(("jobs", y), 0) for y in (2025, 2026, 2027)} == {2025: 11, 2026: 12, 2027: 0}


def test_fomc_decisions_are_wednesday_sessions(cal):
    fomc = [e.day for e in bundled_events() if e.kind == "fomc"]
    assert all(d.weekday() == 2 and cal.is_session(d) for d in fomc)
    assert date(2026, 12, 9) in fomc and date(2027, 12, 8) in fomc


def test_early_closes_are_exactly_the_exchange_calendars(cal):
    listed = sorted(e.day for e in bundled_events() if e.kind == "early_close")
    from_exchange = []
    for d in cal.sessions_in_range(date(2025, 1, 1), date(2027, 12, 31)):
        open_, close = cal.open_close(d)
        if (close - open_).total_seconds() < 6.5 * 3600:
            from_exchange.append(d)
    assert listed == from_exchange


def test_the_june_2026_jobs_report_is_the_thursday_before_the_independence_day_holiday(cal):
    jobs = {e.day for e in bundled_events() if e.kind == "jobs"}
    assert not cal.is_session(date(2026, 7, 3))
    assert date(2026, 7, 2) in jobs and date(2026, 7, 3) not in jobs


def test_release_days_are_weekdays_and_one_per_month_at_most():
    for kind in ("cpi", "jobs"):
        days = [e.day for e in bundled_events() if e.kind == kind]
        assert all(d.weekday() < 5 for d in days)
        months = [(d.year, d.month) for d in days]
        assert len(months) == len(set(months)), kind


def test_monthly_expiry_is_the_third_friday_or_the_session_before(cal):
    days = [e.day for e in monthly_expiries(date(2025, 1, 1), date(2027, 12, 31), cal.is_session)]
    assert len(days) == 36
    assert date(2025, 4, 17) in days  # 2025-04-18 is Good Friday
    assert date(2026, 12, 18) in days and date(2026, 1, 16) in days
    assert all(cal.is_session(d) for d in days)


def test_monthly_expiry_is_derived_for_any_year_the_exchange_calendar_covers(cal):
    events = load_event_calendar(parse_config({}), cal)
    assert [e.label for e in events.on(date(2019, 1, 18))] == ["Monthly opex 2019-01-18"]
    assert events.next_of("opex", date(2019, 1, 2)).day == date(2019, 1, 18)
    assert events.on(date(2019, 1, 17)) == ()


# ------------------------------------------------------------------------------------------------- the rule


def calendar_with(policy: str) -> EventCalendar:
    return EventCalendar.of([Event(date(2026, 12, 9), "fomc", "FOMC")], {"fomc": policy})


def test_hold_day_holds_only_entries_on_the_day():
    cal = calendar_with("hold_day")
    assert cal.held_back_by(date(2026, 12, 9), date(2026, 12, 10)).label == "FOMC 2026-12-09"
    assert cal.held_back_by(date(2026, 12, 8), date(2026, 12, 11)) is None


def test_hold_through_holds_entries_whose_expiry_reaches_the_day():
    cal = calendar_with("hold_through")
    assert cal.held_back_by(date(2026, 12, 8), date(2026, 12, 9)).label == "FOMC 2026-12-09"
    assert cal.held_back_by(date(2026, 12, 7), date(2026, 12, 8)) is None
    assert cal.held_back_by(date(2026, 12, 10), date(2026, 12, 11)) is None


def test_mark_never_holds_back():
    assert calendar_with("mark").held_back_by(date(2026, 12, 9), date(2026, 12, 9)) is None


def test_a_kind_not_named_in_the_policy_keeps_its_default(cal):
    config = parse_config({"events": {"policy": {"opex": "hold_day"}}})
    events = load_event_calendar(config, cal)
    assert events.policy("opex") == "hold_day" and events.policy("fomc") == "hold_day"
    assert events.policy("early_close") == "mark"


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("content", "message"), [
    ("# header\n2026-12-09,fomc,FOMC\n2026-13-01,cpi,CPI\n", "line 3: bad date '2026-13-01' (expected YYYY-MM-DD)"),
    ("2026-12-09,fomx\n", "line 1: unknown event kind 'fomx'"),
    ("2026-12-18,opex\n", "line 1: unknown event kind 'opex' (known: fomc, cpi, jobs, early_close) (opex is derived"),
    ("2026-12-09\n", "line 1: expected date,kind,name"),
])
def test_a_malformed_calendar_names_the_file_and_line(tmp_path: Path, content: str, message: str):
    path = tmp_path / "events.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_event_file(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content", [None, "2026-12-09,fomc\nnot a line\n"])
def test_a_missing_or_malformed_calendar_stops_scan_with_one_line(tmp_path: Path, content: str | None):
    path = tmp_path / "events.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    config = tmp_path / "c.yml"
    config.write_text(f"events: {{file: {json.dumps(str(path))}}}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["scan", "--config", str(config), "--at", OPEN, "--db", str(tmp_path / "x")])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert str(path) in lines[0]
    assert ("event calendar not found" if content is None else "line 2: expected date,kind,name") in lines[0]


def test_a_bad_extra_date_in_the_config_is_refused_with_its_path():
    from spreadwatch.errors import ConfigError

    with pytest.raises(ConfigError, match=r"events.extra.fomc\[0\]: must be a date YYYY-MM-DD, got '2026-12-99'"):
        parse_config({"events": {"extra": {"fomc": ["2026-12-99"]}}})
    with pytest.raises(ConfigError, match="events.policy.fomc: must be one of hold_day, hold_through, mark"):
        parse_config({"events": {"policy": {"fomc": "skip"}}})


# ---------------------------------------------------------------------------------------- scan, status, metrics


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_scan_says_why_a_setup_is_held_back_on_an_event_day(tmp_path: Path):
    config = write_config(tmp_path, "events: {extra: {fomc: ['2019-01-02']}}\n")
    result = CliRunner().invoke(cli, ["scan", "--config", config, "--at", OPEN, "--db", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert "[IN WINDOW, held back: FOMC 2019-01-02]" in result.output


@pytest.fixture(scope="module")
def bundled_day_context():
    """The bundled replay day's market context in its first entry window (built once: read-only)."""
    from spreadwatch.app.status import market_context

    return market_context(parse_config({}), at=OPEN)[0]


def held_reasons(tmp_path: Path, context, events: dict) -> set:
    from spreadwatch.app.scan import scan_context

    result = scan_context(parse_config({"events": events}), context, db_path=str(tmp_path / "x"))
    opps = result.opportunities
    assert opps and {o.dte for o in opps} == {1}, "the bundled day's setups are 1 DTE (expiring 2019-01-03)"
    return {o.held_back for o in opps}


@pytest.mark.parametrize(("events", "held"), [
    ({"extra": {"cpi": ["2019-01-03"]}, "policy": {"cpi": "hold_through"}}, {"CPI 2019-01-03"}),
    ({"extra": {"cpi": ["2019-01-04"]}, "policy": {"cpi": "hold_through"}}, {None}),
    ({"extra": {"cpi": ["2019-01-03"]}, "policy": {"cpi": "hold_day"}}, {None}),
    ({"extra": {"fomc": ["2019-01-02"]}, "policy": {"fomc": "mark"}}, {None}),
    ({"extra": {"fomc": ["2019-01-02"]}}, {"FOMC 2019-01-02"}),
    ({}, {None}),  # the bundled calendar has no event on 2019-01-02
])
def test_each_policy_holds_back_exactly_the_entries_it_names(tmp_path: Path, bundled_day_context, events, held):
    assert held_reasons(tmp_path, bundled_day_context, events) == held


def test_status_shows_todays_events_and_the_rest_of_the_week(tmp_path: Path):
    from exporter_support import utc
    from spreadwatch.app.status import status_events

    config = write_config(tmp_path, "events: {extra: {fomc: ['2019-01-02'], jobs: ['2019-01-04']}}\n")
    result = CliRunner().invoke(cli, ["status", "--config", config, "--at", OPEN, "--db", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert "Events today: FOMC 2019-01-02 (holds entries)" in result.output
    assert "Events later this week: Jobs report 2019-01-04 (holds entries)" in result.output
    keys, _ = status_events(parse_config({"events": {"extra": {"fomc": ["2019-01-02"], "jobs": ["2019-01-04"]}}}),
                            utc(OPEN))
    assert keys["events"]["today"] == [{"date": "2019-01-02", "kind": "fomc", "name": "FOMC", "policy": "hold_day"}]
    assert [e["kind"] for e in keys["events"]["this_week"]] == ["jobs"]


def test_the_exporter_exports_events_and_held_back_setups(tmp_path: Path):
    from exporter_support import START, make_service, sample

    # The loop tests' replay day, 2026-11-24, made an FOMC day; 2026-11-27 is the day after Thanksgiving.
    config = parse_config({"events": {"extra": {"fomc": ["2026-11-24"]}}})
    service = make_service(tmp_path, start=START, config=config)
    service.step(START, {"market", "positions", "scan"})
    assert sample(service, "spreadwatch_event_today", {"kind": "fomc"}) == 1
    assert sample(service, "spreadwatch_event_today", {"kind": "cpi"}) == 0
    assert sample(service, "spreadwatch_event_next_days", {"kind": "cpi"}) == 16  # 2026-12-10
    assert sample(service, "spreadwatch_event_next_days", {"kind": "opex"}) == 24  # 2026-12-18
    assert sample(service, "spreadwatch_event_holds_entries", {"kind": "fomc"}) == 1
    assert sample(service, "spreadwatch_event_holds_entries", {"kind": "opex"}) == 0
    assert sample(service, "spreadwatch_event_info", {"kind": "early_close", "date": "2026-11-27",
                                                      "name": "Early close", "policy": "mark"}) == 1


def test_the_loop_holds_back_setups_on_an_event_day_and_exports_why(tmp_path: Path, caplog):
    from exporter_support import make_service, sample, utc
    from spreadwatch.edges.providers.replay import ReplayProvider

    config = parse_config({"events": {"extra": {"fomc": ["2019-01-02"]}}})
    service = make_service(tmp_path, ReplayProvider(bundled_path("replay_sample.csv")), start=utc(OPEN),
                           config=config, tickers=("SPX",), grid=bundled_path("grid_spx.csv"))
    with caplog.at_level("INFO", logger="spreadwatch.events"):
        service.step(utc(OPEN), {"market", "positions", "scan"})
    opportunities = [o for r in service.snapshot.scans.values() for o in r.opportunities]
    logged = [r.getMessage() for r in caplog.records if r.name == "spreadwatch.events"]
    assert any("setup(s) in window held back: FOMC 2019-01-02" in m for m in logged), logged
    assert not any("trade opportunity" in m for m in logged), logged
    assert opportunities and all(o.held_back == "FOMC 2019-01-02" for o in opportunities)
    o = opportunities[0]
    labels = {"ticker": o.ticker, "id": o.id, "dte": str(o.dte), "band": o.band, "spread_type": o.spread_type,
              "flow_mode": o.flow_mode, "width": f"{o.spread_width:g}", "entry_time_et": o.entry_time_et}
    assert sample(service, "spreadwatch_opportunity_held_back", labels) == 1
    assert sample(service, "spreadwatch_opportunity_in_window", labels) == 1  # in its window, and held back


def test_config_check_loads_the_event_calendar_the_settings_name(tmp_path: Path):
    bad = tmp_path / "events.csv"
    bad.write_text("2026-12-09,fomc\n2026-12-10,cpx\n", encoding="utf-8")
    config = write_config(tmp_path, f"events: {{file: {json.dumps(str(bad))}}}\n")
    result = CliRunner().invoke(cli, ["config", "check", config])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {bad}: line 2: unknown event kind 'cpx' (known: fomc, cpi, jobs, early_close)"
