"""Entry notices: per ticker and entry window the few best in-window setups an opportunity notification lists,
identified without their width, and their line in the display zone."""

from __future__ import annotations

from dataclasses import replace

from spreadwatch.domain.notices import setup_id, window_setups
from spreadwatch.domain.scanner import Opportunity, ScanResult
from spreadwatch.domain.strikes import Strikes


def opp(rank: int, *, dte: int = 1, band: str = "P98", width: float = 25.0, entry: str = "09:30",
        in_window: bool = True, blocked: bool = False, spread: str = "iron_condor") -> Opportunity:
    return Opportunity(
        id=f"id{rank}-{width:g}", rank=rank, ticker="SPX", dte=dte, band=band, spread_type=spread,
        flow_mode="with_flow", spread_width=width, entry_time_et=entry, entry_time_local="06:30", entry_zone="PT",
        win_rate=0.93, roi=0.083, sharpe=0.4, trade_score=90.0 - rank, credit=192.0, max_risk=2308.0, n_trades=60,
        in_window=in_window, blocked_by_risk=blocked, exit_win_rate=0.781,
        strikes=Strikes(short_put=2430, long_put=2405, short_call=2575, long_call=2600), expiry="2019-01-03")


def result(*opportunities: Opportunity) -> ScanResult:
    return ScanResult("SPX", "low", 0, len(opportunities), tuple(opportunities))


def test_each_window_lists_its_best_setups_in_scan_order_up_to_top():
    scan = result(opp(1, band="P98"), opp(2, band="P97"), opp(3, band="P99"), opp(4, band="P95"),
                  opp(5, band="P98", entry="10:00"), opp(6, in_window=False, band="P100"))
    chosen = window_setups(scan, top=3)
    assert [(w.window, w.rank, w.opportunity.band) for w in chosen] == [
        ("09:30", 1, "P98"), ("09:30", 2, "P97"), ("09:30", 3, "P99"), ("10:00", 1, "P98")]


def test_a_setup_blocked_by_a_risk_limit_is_not_listed_and_does_not_take_a_rank():
    chosen = window_setups(result(opp(1, band="P98", blocked=True), opp(2, band="P97")), top=3)
    assert [(w.rank, w.opportunity.band) for w in chosen] == [(1, "P97")]


def test_a_setup_held_back_by_a_scheduled_event_is_not_listed_and_does_not_take_a_rank():
    held = replace(opp(1, band="P98"), held_back="FOMC 2019-01-30")
    chosen = window_setups(result(held, opp(2, band="P97")), top=3)
    assert [(w.rank, w.opportunity.band) for w in chosen] == [(1, "P97")]


def test_a_setup_is_the_same_whatever_its_width():
    narrow, wide = opp(1, width=25.0), opp(1, width=50.0)
    assert narrow.id != wide.id
    assert window_setups(result(narrow), 3)[0].setup == window_setups(result(wide), 3)[0].setup
    assert window_setups(result(narrow), 3)[0].setup == setup_id("SPX", 1, "P98", "iron_condor", "with_flow", "09:30")
    # `scan --all` keeps every width: the notification still lists the setup once, at its best width.
    both = window_setups(result(narrow, replace(wide, rank=2), opp(3, band="P97")), 3)
    assert [(w.rank, w.opportunity.spread_width, w.opportunity.band) for w in both] == [
        (1, 25.0, "P98"), (2, 25.0, "P97")]


def test_a_different_dte_band_spread_or_window_is_another_setup():
    base = setup_id("SPX", 1, "P98", "iron_condor", "with_flow", "09:30")
    others = {setup_id("SPX", 3, "P98", "iron_condor", "with_flow", "09:30"),
              setup_id("SPX", 1, "P97", "iron_condor", "with_flow", "09:30"),
              setup_id("SPX", 1, "P98", "put_spread", "with_flow", "09:30"),
              setup_id("SPX", 1, "P98", "iron_condor", "neutral", "09:30"),
              setup_id("SPX", 1, "P98", "iron_condor", "with_flow", "10:00"),
              setup_id("NDX", 1, "P98", "iron_condor", "with_flow", "09:30")}
    assert base not in others and len(others) == 6


def test_the_line_has_dte_band_spread_width_entry_time_in_the_display_zone_win_rates_money_and_strikes():
    item = window_setups(result(opp(1)), 3)[0]
    assert item.window_local == "06:30 PT"
    assert item.line == ("1DTE P98 IRON_CONDOR 25 wide @ 06:30 PT | Win:78.1% managed 93.0% held | Credit:$192 "
                         "Risk:$2308 | Strikes: SP 2430 LP 2405 SC 2575 LC 2600")
    unknown = replace(opp(1, spread="put_spread"), exit_win_rate=None, strikes=None)
    assert unknown.notice_line() == ("1DTE P98 PUT_SPREAD 25 wide @ 06:30 PT | Win:93.0% held | Credit:$192 "
                                     "Risk:$2308")


def test_nothing_in_window_lists_nothing():
    assert window_setups(result(opp(1, in_window=False)), 3) == ()
