"""Entry notices: what the trader is told about opportunities, per ticker and entry window.

A scan ranks every passing setup; a notification lists only the few best of one entry window, numbered as the
original announced them ("Found 3 trade opportunity(ies)", #1, #2, #3). This module picks them: per ticker and
entry window (the grid's entry time, ET), the in-window setups that no risk limit blocks, in the scan's order,
the first `top` of them. A setup here is the grid's setup without its width (ticker, DTE, band, spread type, flow
mode, entry time): the scan already keeps its best width, and a width that changes between scans is the same
setup, never a new one to announce. Alertmanager groups the alerts of one ticker and window into one notification
and sends a later one only when the group gains a setup (alertmanager/alertmanager.yml).

Pure: a scan result in, values out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spreadwatch.domain.scanner import Opportunity, ScanResult


@dataclass(frozen=True)
class WindowSetup:
    """One setup of one entry window's notification."""

    ticker: str
    window: str  # the entry time (HH:MM ET) the window is centred on
    setup: str  # identity without the width (setup_id)
    rank: int  # 1 = the window's best
    opportunity: Opportunity

    @property
    def window_local(self) -> str:
        """The window's entry time in the display zone (`06:30 PT`)."""
        return self.opportunity.entry_local

    @property
    def line(self) -> str:
        return self.opportunity.notice_line()


def setup_id(ticker: str, dte: int, band: str, spread_type: str, flow_mode: str, entry_time_et: str) -> str:
    """The identity of a setup whatever its width: the same in every scan of every session."""
    key = f"{ticker}|{dte}|{band}|{spread_type}|{flow_mode}|{entry_time_et}"
    return hashlib.sha1(key.encode()).hexdigest()[:10]


def window_setups(result: ScanResult, top: int) -> tuple[WindowSetup, ...]:
    """The first `top` in-window setups of each entry window neither blocked by a risk limit nor held back by a
    scheduled event, in the scan's order
    (best first); windows in entry-time order."""
    by_window: dict[str, list[tuple[str, Opportunity]]] = {}
    for o in result.opportunities:
        if not o.in_window or o.blocked_by_risk or o.held_back:  # held back by a scheduled event: not offered
            continue
        chosen = by_window.setdefault(o.entry_time_et, [])
        key = setup_id(o.ticker, o.dte, o.band, o.spread_type, o.flow_mode, o.entry_time_et)
        if len(chosen) < top and all(key != k for k, _ in chosen):  # one width per setup (`scan --all` keeps more)
            chosen.append((key, o))
    return tuple(WindowSetup(result.ticker, window, key, rank, o)
                 for window, chosen in sorted(by_window.items())
                 for rank, (key, o) in enumerate(chosen, start=1))
