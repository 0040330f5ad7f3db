"""positions.py, the pure domain of the position book: validation, exit and limit rules, summary, money, and the
original system's positions.json. No database, clock or calendar here (the calendar is passed in as functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from spreadwatch.config import Exits, Risk
from spreadwatch.domain.positions import (
    IMPORT_ALIASES,
    JSON_KEYS,
    SUMMARY_KEYS,
    PnlReading,
    Position,
    PositionInput,
    computed_risk,
    exit_pnl,
    exit_signals,
    limit_warnings,
    money,
    parse_original,
    spread_width,
    strikes_text,
    summarize,
    validate,
    validate_pnl,
)
from spreadwatch.errors import InputError

TICKERS = ("NDX", "SPX")
PACIFIC = timezone(timedelta(hours=-8))


def condor(**changes) -> PositionInput:
    """The README's example: 2 NDX iron condors, 100 points wide on each side."""
    base = PositionInput(ticker="NDX", spread="iron_condor", band="P98", flow_mode="with_flow", dte=3, contracts=2,
                         credit=285.0, risk=None, short_put=19500, long_put=19400, short_call=20500, long_call=20600)
    return base.replace(**changes)


def put_spread(**changes) -> PositionInput:
    base = PositionInput(ticker="NDX", spread="put_spread", band="P97", flow_mode="neutral", dte=5, contracts=3,
                         credit=150.0, risk=None, short_put=19800, long_put=19700)
    return base.replace(**changes)


def call_spread(**changes) -> PositionInput:
    base = PositionInput(ticker="SPX", spread="call_spread", band="P99", flow_mode="against_flow", dte=1,
                         contracts=1, credit=120.0, risk=None, short_call=6100, long_call=6110)
    return base.replace(**changes)


def rejected(entry: PositionInput) -> str:
    with pytest.raises(InputError) as info:
        validate(entry, tickers=TICKERS)
    message = str(info.value)
    assert "\n" not in message
    return message


def position(**changes) -> Position:
    base = Position(
        id="a3f8c1", ticker="NDX", spread="iron_condor", band="P98", flow_mode="with_flow", dte=3, contracts=2,
        entry_time=datetime(2026, 11, 23, 15, 30, tzinfo=UTC), expiry=date(2026, 11, 27), credit=285.0,
        risk=19715.0, pnl=0.0, pnl_updated_at=None, status="open", short_put=19500.0, long_put=19400.0,
        short_call=20500.0, long_call=20600.0, note="", closed_at=None,
    )
    return base.replace(**changes)


# ---- validation: good input ----------------------------------------------------------------------------------
def test_valid_condor_gets_its_risk_computed_when_omitted():
    entry, warnings = validate(condor(), tickers=TICKERS)
    assert warnings == []
    assert entry.risk == 100 * 100 * 2 - 285 == 19715
    assert entry.credit == 285.0 and entry.short_put == 19500.0 and entry.note == ""


def test_each_spread_type_needs_only_its_own_legs():
    entry, _ = validate(put_spread(), tickers=TICKERS)
    assert entry.risk == 100 * 100 * 3 - 150
    assert entry.short_call is None and entry.long_call is None
    entry, _ = validate(call_spread(), tickers=TICKERS)
    assert entry.risk == 10 * 100 * 1 - 120
    assert entry.short_put is None and entry.long_put is None


def test_condor_risk_uses_the_wider_side():
    legs = {"long_put": 19350.0, "short_put": 19500.0, "short_call": 20500.0, "long_call": 20600.0}
    assert spread_width("iron_condor", legs) == 150
    assert computed_risk("iron_condor", legs, 2, 285) == 150 * 100 * 2 - 285


def test_a_given_risk_is_kept_and_a_consistent_one_gives_no_warning():
    entry, warnings = validate(condor(risk=19715.0), tickers=TICKERS)
    assert entry.risk == 19715.0 and warnings == []
    entry, warnings = validate(condor(risk=19715.004), tickers=TICKERS)  # within half a cent
    assert warnings == []


def test_a_risk_that_contradicts_the_strikes_is_refused_with_the_computed_value():
    # The original's example: --credit 285 --risk 1715 on 2 contracts 100 points wide.
    with pytest.raises(InputError, match=r"^--risk \$1,715\.00 disagrees with the strikes: width x 100 x "
                                         r"contracts - credit = \$19,715\.00; leave --risk out"):
        validate(condor(risk=1715.0), tickers=TICKERS)
    # Within $1 of the strikes' risk is rounding: kept as given.
    entry, warnings = validate(condor(risk=19714.0), tickers=TICKERS)
    assert entry.risk == 19714.0 and warnings == []
    with pytest.raises(InputError, match="disagrees"):
        validate(condor(risk=19713.99), tickers=TICKERS)


def test_an_import_keeps_a_contradicting_risk_and_reports_it_and_limits_count_the_strikes():
    from spreadwatch.domain.positions import risk_disagreement

    entry, warnings = validate(condor(risk=1715.0), tickers=TICKERS, keep_given_risk=True)
    assert entry.risk == 1715.0 and "kept as imported, risk limits count $19,715.00" in warnings[0]
    assert risk_disagreement(entry) == ("risk $1,715.00 disagrees with the strikes' $19,715.00 (width x 100 x "
                                        "contracts - credit); kept as imported, risk limits count $19,715.00")
    stored = position(risk=1715.0)
    assert stored.strikes_risk == 19715.0
    assert summarize([stored]).total_risk == 19715.0
    assert limit_warnings([stored], 30_286.0, Risk()) == [
        "warning: capital at risk $50,001.00 would exceed risk.max_total_risk $50,000.00"]


def test_numeric_strings_are_accepted_as_numbers():
    entry, _ = validate(condor(credit="285", short_put="19500"), tickers=TICKERS)
    assert entry.credit == 285.0 and entry.short_put == 19500.0


# ---- validation: every bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize("entry,expected", [
    (condor(spread="strangle"), "--spread: unknown spread 'strangle'"),
    (condor(band="P90"), "--band: unknown band 'P90'"),
    (condor(band="p98"), "--band: unknown band 'p98'"),
    (condor(ticker="RUT"), "--ticker: unknown ticker 'RUT'"),
    (condor(flow_mode="sideways"), "--flow-mode: unknown flow mode 'sideways'"),
    (condor(dte=-1), "--dte: must be a whole number >= 0, got -1"),
    (condor(dte=2.5), "--dte: must be a whole number >= 0"),
    (condor(dte=True), "--dte: must be a whole number >= 0"),
    (condor(contracts=0), "--contracts: must be a whole number >= 1, got 0"),
    (condor(contracts=-2), "--contracts: must be a whole number >= 1"),
    (condor(credit=0.0), "--credit: must be > 0"),
    (condor(credit=-10.0), "--credit: must be > 0"),
    (condor(credit="abc"), "--credit: 'abc' is not a number"),
    (condor(credit=None), "--credit: None is not a number"),
    (condor(credit=float("nan")), "--credit: nan is not a finite number"),
    (condor(credit=float("inf")), "--credit: inf is not a finite number"),
    (condor(risk=0.0), "--risk: must be > 0"),
    (condor(risk=-5.0), "--risk: must be > 0"),
    (condor(risk="lots"), "--risk: 'lots' is not a number"),
    (condor(short_put="19,500"), "--short-put: '19,500' is not a number"),
    (condor(long_call=-1.0), "--long-call: must be > 0"),
])
def test_bad_input_is_one_line_naming_the_field(entry, expected):
    assert rejected(entry).startswith(expected)


def test_credit_at_or_above_the_maximum_is_refused():
    # Width 100 x 100 x 2 contracts = $20,000: that is the most the position can ever be worth.
    assert "must be below the spread's width x 100 x contracts (20,000.00)" in rejected(condor(credit=20000.0))
    assert "(20,000.00)" in rejected(condor(credit=25000.0))
    entry, _ = validate(condor(credit=19999.99), tickers=TICKERS)
    assert entry.risk == pytest.approx(0.01)
    assert "(1,000.00)" in rejected(call_spread(credit=1000.0))


@pytest.mark.parametrize("entry,flag", [
    (condor(long_put=None), "--long-put: required for an iron_condor"),
    (condor(short_call=None), "--short-call: required for an iron_condor"),
    (put_spread(long_put=None), "--long-put: required for a put_spread"),
    (call_spread(short_call=None), "--short-call: required for a call_spread"),
])
def test_missing_legs_are_refused(entry, flag):
    assert rejected(entry) == flag


@pytest.mark.parametrize("entry,flag", [
    (put_spread(short_call=20500), "--short-call: does not apply to a put_spread"),
    (put_spread(long_call=20600), "--long-call: does not apply to a put_spread"),
    (call_spread(short_put=6000), "--short-put: does not apply to a call_spread"),
    (call_spread(long_put=5990), "--long-put: does not apply to a call_spread"),
])
def test_legs_for_the_wrong_side_are_refused(entry, flag):
    message = rejected(entry)
    assert message.startswith(flag)
    assert "(it has --" in message


@pytest.mark.parametrize("entry,lower,upper", [
    (put_spread(short_put=19700, long_put=19800), "--long-put 19800", "--short-put 19700"),
    (put_spread(short_put=19700, long_put=19700), "--long-put 19700", "--short-put 19700"),
    (call_spread(short_call=6110, long_call=6100), "--short-call 6110", "--long-call 6100"),
    (condor(short_put=20550), "--short-put 20550", "--short-call 20500"),
    (condor(long_call=20500), "--short-call 20500", "--long-call 20500"),
])
def test_strikes_out_of_order_are_refused(entry, lower, upper):
    message = rejected(entry)
    assert message.startswith(f"strikes out of order: {lower} must be below {upper}")
    assert "long put < short put < short call < long call" in message


def test_validate_pnl_accepts_losses_and_refuses_non_numbers():
    assert validate_pnl("-600") == -600.0
    assert validate_pnl(0) == 0.0
    for bad in ("abc", float("nan"), None):
        with pytest.raises(InputError, match="^--pnl: "):
            validate_pnl(bad)


# ---- exit rules ----------------------------------------------------------------------------------------------
EXITS = Exits()  # profit_target_pct 0.50, stop_loss_mult 2.0, time_exit_dte 1


def reasons(p: Position, sessions: int | None = 3, exits: Exits = EXITS) -> list[str]:
    return [s.reason for s in exit_signals(p, sessions, exits)]


def test_profit_target_fires_at_exactly_half_the_credit():
    assert reasons(position(pnl=142.50)) == ["profit_target"]  # 0.50 x 285 = 142.50: >=
    assert reasons(position(pnl=142.49)) == []
    [signal] = exit_signals(position(pnl=142.50), 3, EXITS)
    assert signal.detail == "Profit target hit | P&L: $142.50 (+50.0%) >= $142.50 (50% of credit)"
    assert signal.label == "profit target"


def test_stop_loss_fires_at_exactly_minus_twice_the_credit():
    assert reasons(position(pnl=-570.0)) == ["stop_loss"]  # -2.0 x 285 = -570: <=
    assert reasons(position(pnl=-569.99)) == []
    [signal] = exit_signals(position(pnl=-600.0), 3, EXITS)
    assert signal.detail.startswith("Stop loss hit | P&L: $-600.00 (-210.5%) <= $-570.00 (2x credit)")
    assert signal.label == "stop loss"


# ---- the exit P&L: which P&L the target and stop evaluate -------------------------------------------------------
AT = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
LOGGED_FRESH = 120 * 60.0  # exits.pnl_stale_after_minutes 120


def readings(logged_minutes: float, model: float | None = -612.4) -> dict[str, PnlReading]:
    out = {"logged": PnlReading("logged", 20.0, AT - timedelta(minutes=logged_minutes))}
    if model is not None:
        out["model"] = PnlReading("model", model, AT - timedelta(seconds=30), 18.2, "VIX")
    return out


def test_the_logged_pnl_wins_while_younger_than_the_staleness_bound_then_the_model_mark():
    order = ("logged", "market", "model")
    assert exit_pnl(order, readings(119), AT, LOGGED_FRESH).source == "logged"
    assert exit_pnl(order, readings(120), AT, LOGGED_FRESH).source == "model"  # younger than: 120 min is stale
    assert exit_pnl(("model", "logged"), readings(1), AT, LOGGED_FRESH).source == "model"  # the order decides


def test_without_a_current_mark_the_old_logged_pnl_stays_and_an_order_without_logged_gives_none():
    order = ("logged", "market", "model")
    assert exit_pnl(order, readings(300, model=None), AT, LOGGED_FRESH).pnl == 20.0
    assert exit_pnl(("logged",), readings(300), AT, LOGGED_FRESH).source == "logged"  # logged only: never a mark
    assert exit_pnl(("market", "model"), readings(1, model=None), AT, LOGGED_FRESH) is None
    never_timed = {"logged": PnlReading("logged", 20.0, None)}
    assert exit_pnl(order, {**never_timed, **readings(0)}, AT, LOGGED_FRESH).source == "logged"
    assert exit_pnl(order, {**readings(0), **never_timed}, AT, LOGGED_FRESH).source == "model"  # age unknown


def test_a_stop_on_the_model_mark_says_where_its_pnl_comes_from_and_how_old_it_is():
    reading = readings(300)["model"]
    [signal] = exit_signals(position(pnl=20.0), 3, EXITS, reading, AT)
    assert signal.reason == "stop_loss"
    assert signal.detail == ("Stop loss hit | P&L: $-612.40 (-214.9%) (estimated from the model, VIX 18.2, data 30s "
                             "old) <= $-570.00 (2x credit)")
    logged = PnlReading("logged", 150.0, AT - timedelta(minutes=12))
    [signal] = exit_signals(position(pnl=150.0), 3, EXITS, logged, AT)
    assert signal.detail.startswith("Profit target hit | P&L: $150.00 (+52.6%) (logged 12m ago) >= $142.50")
    assert reasons(position(pnl=20.0)) == []  # the logged P&L alone meets nothing


def test_time_exit_at_or_under_time_exit_dte_sessions():
    assert reasons(position(dte=3), sessions=2) == []
    assert reasons(position(dte=3), sessions=1) == ["time_exit"]  # <=
    assert reasons(position(dte=3), sessions=0) == ["time_exit"]
    [signal] = exit_signals(position(dte=3), 1, EXITS)
    assert signal.detail == "Time exit: 1 session(s) to expiry <= 1"
    assert signal.label == "time exit"


def test_short_dated_entries_get_an_expiry_day_reminder_instead_of_a_time_exit():
    # dte <= time_exit_dte: no time exit at entry, only a reminder on expiry day.
    assert reasons(position(dte=1), sessions=1) == []
    assert reasons(position(dte=1), sessions=0) == ["expiry_day"]
    assert reasons(position(dte=0), sessions=0) == ["expiry_day"]
    assert reasons(position(dte=2), sessions=1) == ["time_exit"]  # dte just above the threshold


def test_an_open_position_past_its_expiry_is_expired_never_a_negative_time_exit():
    for dte in (0, 1, 3):
        assert reasons(position(dte=dte), sessions=-1) == ["expired"]
        assert reasons(position(dte=dte), sessions=-190) == ["expired"]
    assert reasons(position(dte=3, pnl=-600.0), sessions=-2) == ["stop_loss", "expired"]
    [signal] = exit_signals(position(dte=1), -190, EXITS)
    assert signal.detail == (f"Expired: expired 190 session(s) ago ({position().expiry.isoformat()}); close it in "
                             "the book with its final P&L")
    assert "-" not in signal.detail.split("(")[0]  # no negative count in the words


def test_unknown_sessions_to_expiry_only_judges_the_pnl_rules():
    assert reasons(position(dte=3, pnl=200.0), sessions=None) == ["profit_target"]
    assert reasons(position(dte=0), sessions=None) == []


def test_thresholds_come_from_the_config():
    exits = Exits(profit_target_pct=0.25, stop_loss_mult=1.0, time_exit_dte=2)
    assert reasons(position(pnl=71.25), exits=exits) == ["profit_target"]
    assert reasons(position(pnl=-285.0), exits=exits) == ["stop_loss"]
    assert reasons(position(dte=3), sessions=2, exits=exits) == ["time_exit"]
    assert reasons(position(dte=2), sessions=2, exits=exits) == []


def test_pnl_and_time_rules_combine():
    assert reasons(position(dte=3, pnl=-1000.0), sessions=0) == ["stop_loss", "time_exit"]


# ---- limits --------------------------------------------------------------------------------------------------
def at_risk(risk: float, **changes) -> Position:
    """A put spread whose strikes' risk is `risk` (1 contract, credit 285)."""
    return position(spread="put_spread", contracts=1, short_call=None, long_call=None, short_put=19500.0,
                    long_put=19500.0 - (risk + 285.0) / 100, risk=risk, **changes)


def test_limit_warnings_when_the_book_would_break_a_limit():
    held = [at_risk(10_000.0, id=f"p{i}") for i in range(4)]
    assert limit_warnings(held, 9_000.0, Risk()) == []  # 5 positions, $49,000: within max 5 / $50,000
    assert limit_warnings(held, 10_000.0, Risk()) == []  # exactly at the limit is allowed
    [risk] = limit_warnings(held, 10_000.01, Risk())
    assert risk == "warning: capital at risk $50,000.01 would exceed risk.max_total_risk $50,000.00"
    [count] = limit_warnings([*held, at_risk(1.0, id="p5")], 1.0, Risk())
    assert count == "warning: 6 open positions would exceed risk.max_positions 5"
    assert len(limit_warnings([*held, at_risk(10_000.0, id="p5")], 1.0, Risk())) == 2


# ---- summary and presentation --------------------------------------------------------------------------------
def test_money_is_shown_as_the_original_shows_it():
    assert money(2055) == "+$2,055.00"
    assert money(215.0) == "+$215.00"
    assert money(-600) == "-$600.00"
    assert money(0) == "+$0.00"
    assert money(1234567.891) == "+$1,234,567.89"
    assert money(5145, sign=False) == "$5,145.00"
    assert money(-5145, sign=False) == "-$5,145.00"


def test_summarize_counts_risk_and_pnl_like_the_original():
    book = [
        at_risk(1715.0, id="a", pnl=100.0),
        at_risk(3430.0, id="b", pnl=115.0),
        at_risk(850.0, id="c", status="closed", pnl=1900.0),
        at_risk(900.0, id="d", status="closed", pnl=-60.0),
    ]
    summary = summarize(book)
    assert (summary.total_count, summary.open_count, summary.closed_count) == (4, 2, 2)
    assert summary.total_risk == pytest.approx(5145.0)  # open positions only
    assert summary.unrealized_pnl == 215.0 and summary.realized_pnl == 1840.0
    assert summary.total_pnl == 2055.0
    assert list(summary.to_json()) == list(SUMMARY_KEYS)
    assert summary.to_json()["total_pnl"] == 2055.0
    assert summarize([]).to_json() == dict.fromkeys(SUMMARY_KEYS, 0)


def test_position_json_has_the_design_keys_in_order():
    data = position(pnl_updated_at=datetime(2026, 11, 24, 16, 0, tzinfo=UTC)).to_json()
    assert list(data) == list(JSON_KEYS)
    assert data["expiry"] == "2026-11-27" and data["entry_time"] == "2026-11-23T15:30:00+00:00"
    assert data["closed_at"] is None and data["pnl_updated_at"] == "2026-11-24T16:00:00+00:00"


def test_strikes_text():
    assert strikes_text(position()) == "19400/19500P 20500/20600C"
    assert strikes_text(position(short_call=None, long_call=None)) == "19400/19500P"


# ---- the original's positions.json ---------------------------------------------------------------------------
def expiry_for(entered: datetime, dte: int) -> date:
    return entered.date() + timedelta(days=dte)  # a stand-in calendar: every day is a session


def is_session(day: date) -> bool:
    return day.weekday() < 5


def parse(data):
    return parse_original(data, tickers=TICKERS, local_tz=PACIFIC, expiry_for=expiry_for, is_session=is_session)


def record(**changes):
    base = {"position_id": "a3f8", "entry_time": "2026-11-23T07:30:00", "dte": 3, "band": "P98",
            "spread_type": "iron_condor", "flow_mode": "with_flow", "contracts": 2, "entry_credit": 285.0,
            "max_risk": 1715.0, "short_call": 20500, "long_call": 20600, "short_put": 19500, "long_put": 19400,
            "status": "open", "current_pnl": 120.0, "notes": "Entry from 07:30 PST alert"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_original_records_map_through_the_aliases():
    [(wanted, entry, state)] = parse([record()])
    assert wanted == "a3f8"
    assert (entry.ticker, entry.spread, entry.band, entry.flow_mode, entry.dte, entry.contracts) == (
        "NDX", "iron_condor", "P98", "with_flow", 3, 2)
    assert entry.credit == 285.0 and entry.risk == 1715.0 and entry.note == "Entry from 07:30 PST alert"
    assert state["status"] == "open" and state["pnl"] == 120.0 and state["closed_at"] is None
    # Naive times are the original's local time.
    assert state["entry_time"] == datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
    assert state["expiry"] == date(2026, 11, 26)  # computed by expiry_for from dte


@pytest.mark.parametrize("shape", ["list", "wrapped list", "by id", "wrapped by id"])
def test_the_accepted_file_shapes(shape):
    one = record(position_id=...)
    two = record(position_id=..., spread_type="put_spread", short_call=..., long_call=..., max_risk=...)
    data = {
        "list": [{"id": "a1", **one}, {"id": "b2", **two}],
        "wrapped list": {"positions": [{"id": "a1", **one}, {"id": "b2", **two}], "last_updated": "2026-11-24"},
        "by id": {"a1": one, "b2": two},
        "wrapped by id": {"positions": {"a1": one, "b2": two}},
    }[shape]
    parsed = parse(data)
    assert [w for w, _, _ in parsed] == ["a1", "b2"]
    assert parsed[1][1].spread == "put_spread" and parsed[1][1].risk == 100 * 100 * 2 - 285


def test_closed_records_keep_their_realized_pnl_and_close_time():
    [(_, _, state)] = parse([record(status="closed", current_pnl=..., exit_pnl=142.5,
                                    exit_time="2026-11-24T09:00:00-08:00")])
    assert state["status"] == "closed" and state["pnl"] == 142.5
    assert state["closed_at"] == datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
    [(_, _, state)] = parse([record(status="CLOSED", last_update="2026-11-24T10:00:00Z")])
    assert state["closed_at"] == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # no close time: the last update
    [(_, _, state)] = parse([record(status="closed")])
    assert state["closed_at"] == state["entry_time"]


def test_optional_fields_default():
    [(wanted, entry, state)] = parse([record(position_id=..., flow_mode=..., notes=..., current_pnl=...,
                                             status=..., max_risk=...)])
    assert wanted is None and entry.flow_mode == "neutral" and entry.note == ""
    assert state["pnl"] == 0.0 and state["status"] == "open" and entry.risk == 19715.0
    [(_, entry, state)] = parse([record(symbol="SPX", expiration="2026-11-27", band="p98")])
    assert entry.ticker == "SPX" and entry.band == "P98" and state["expiry"] == date(2026, 11, 27)


def test_same_value_under_two_aliases_is_fine_but_different_values_conflict():
    parse([record(credit=285.0)])
    with pytest.raises(InputError, match=r"^positions\[0\]\.credit: conflicts with another key for credit$"):
        parse([record(credit=300.0)])


@pytest.mark.parametrize("data,message", [
    ("text", 'expected a list of positions (or {"positions": [...]})'),
    (42, "expected a list of positions"),
    ([record(), "oops"], "positions[1]: expected an object, got str"),
    ([record(colour="red")], "positions[0].colour: unknown key"),
    ([record(), record(position_id="b7c1", entry_credit=...)], "positions[1] (id b7c1): credit: missing"),
    ([record(band=...)], "positions[0] (id a3f8): band: missing"),
    ([record(entry_time=...)], "positions[0] (id a3f8): entry_time: missing"),
    ([record(dte=2.5)], "positions[0] (id a3f8): dte: 2.5 is not a whole number"),
    ([record(dte="3")], "positions[0] (id a3f8): dte: '3' is not a whole number"),
    ([record(contracts=True)], "positions[0] (id a3f8): contracts: True is not a whole number"),
    ([record(entry_credit="lots")], "positions[0] (id a3f8): credit: 'lots' is not a number"),
    ([record(entry_credit=[1])], "positions[0] (id a3f8): credit: [1] is not a number"),
    ([record(entry_credit=-5)], "positions[0] (id a3f8): credit: must be > 0"),
    ([record(spread_type="strangle")], "positions[0] (id a3f8): spread: unknown spread 'strangle'"),
    ([record(long_put=19600)], "positions[0] (id a3f8): strikes out of order"),
    ([record(status="pending")], "positions[0] (id a3f8): status: 'pending' is not open or closed"),
    ([record(entry_time="yesterday")], "positions[0] (id a3f8): entry_time: 'yesterday' is not an ISO 8601 time"),
    ([record(entry_time=1700000000)], "positions[0] (id a3f8): entry_time: 1700000000 is not an ISO 8601 time"),
    ([record(expiry="27/11/2026")], "positions[0] (id a3f8): expiry: '27/11/2026' is not a date"),
    ([record(expiry="2026-11-28")], "positions[0] (id a3f8): expiry: 2026-11-28 is not a trading session"),
    ([record(current_pnl="n/a")], "positions[0] (id a3f8): pnl: 'n/a' is not a number"),
    ([record(position_id="a b")], "positions[0] (id a b): id: 'a b' is not a usable id"),
    ([record(), record()], "positions[1] (id a3f8): id: 'a3f8' appears twice"),
])
def test_malformed_records_name_the_record_and_the_field(data, message):
    with pytest.raises(InputError) as info:
        parse(data)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_every_import_alias_maps_to_a_position_field_or_the_import_state():
    known = {"id", *JSON_KEYS}
    assert set(IMPORT_ALIASES.values()) <= known
    for name in set(IMPORT_ALIASES.values()):
        assert IMPORT_ALIASES[name] == name  # each field is also accepted under its own name


@pytest.mark.parametrize("credit", [285.0, 101.0, 333.0, 7.0, 1715.0, 12.34, 999.98])
@pytest.mark.parametrize("pct,mult", [(0.4, 2.0), (0.5, 1.5), (0.3, 3.0), (0.35, 1.1), (0.65, 2.5)])
def test_a_pnl_of_exactly_the_threshold_fires_for_any_pct_and_mult(credit, pct, mult):
    exits = Exits(profit_target_pct=pct, stop_loss_mult=mult, time_exit_dte=1)
    target = round(pct * credit, 2)
    stop = -round(mult * credit, 2)
    assert reasons(position(credit=credit, pnl=target), exits=exits) == ["profit_target"]
    assert reasons(position(credit=credit, pnl=round(target - 0.01, 2)), exits=exits) == []
    assert reasons(position(credit=credit, pnl=stop), exits=exits) == ["stop_loss"]
    assert reasons(position(credit=credit, pnl=round(stop + 0.01, 2)), exits=exits) == []


def test_whole_dollar_credits_at_a_40_percent_target_fire_at_their_target():
    # 0.4 x 285 is 114.00000000000001 in floating point: compared in cents, a P&L of $114 meets it.
    exits = Exits(profit_target_pct=0.4)
    missed = [c for c in range(1, 2001) if reasons(position(credit=float(c), pnl=round(0.4 * c, 2)), exits=exits)
              != ["profit_target"]]
    assert missed == []
