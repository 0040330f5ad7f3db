"""The market mark (domain/marks.py): a position at the mid of each leg's delayed chain quote; a crossed, zero or
missing quote is flagged and gives no mark (the model mark stays)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spreadwatch.domain.marks import LegQuote, market_mark, quote_flag
from test_marks import Pos

AT = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)




CONDOR = Pos(2, 285.0, short_put=19500, long_put=19490, short_call=20500, long_call=20510)


def test_a_condor_is_marked_at_the_mids_of_its_four_legs():
    quotes = {"short_put": LegQuote(1.10, 1.30, AT - timedelta(minutes=3)),  # mid 1.20
              "long_put": LegQuote(0.80, 1.00, AT - timedelta(minutes=9)),  # 0.90
              "short_call": LegQuote(0.95, 1.05, AT),  # 1.00
              "long_call": LegQuote(0.55, 0.65, AT)}  # 0.60
    mark = market_mark(CONDOR, quotes)
    assert mark.flags == {}
    assert mark.value == pytest.approx((1.20 - 0.90 + 1.00 - 0.60) * 100 * 2)  # $140 to buy both wings back
    assert mark.pnl == pytest.approx(285.0 - 140.0)
    assert mark.as_of == AT - timedelta(minutes=9)  # the oldest leg


@pytest.mark.parametrize(("quote", "flag"), [
    (LegQuote(1.40, 1.20), "crossed"), (LegQuote(0.0, 0.0), "zero"), (LegQuote(1.0, 0.0), "zero"),
    (LegQuote(None, 1.2), "missing"), (LegQuote(1.0, float("nan")), "missing"), (None, "missing"),
    (LegQuote(-0.05, 1.0), "missing"),
])
def test_crossed_zero_or_missing_quotes_are_flagged_and_give_no_mark(quote, flag):
    assert quote_flag(quote) == flag
    good = LegQuote(0.80, 1.00, AT)
    quotes = {"short_put": good, "long_put": good, "short_call": good, "long_call": good}
    quotes = {**quotes, "short_call": quote} if quote is not None else {k: v for k, v in quotes.items()
                                                                        if k != "short_call"}
    mark = market_mark(CONDOR, quotes)
    assert mark.flags == {"short_call": flag}
    assert mark.value is None and mark.pnl is None  # nothing stands in for the refused quote


def test_a_zero_bid_under_a_positive_ask_is_a_real_quote_and_an_unknown_time_gives_no_age():
    spread = Pos(1, 150.0, short_put=19800, long_put=19750)
    mark = market_mark(spread, {"short_put": LegQuote(2.0, 2.4, AT), "long_put": LegQuote(0.0, 0.1, None)})
    assert quote_flag(LegQuote(0.0, 0.1)) is None
    assert mark.value == pytest.approx((2.2 - 0.05) * 100)
    assert mark.as_of is None
