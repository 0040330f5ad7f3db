"""Vocabulary every part shares: regimes, bands, spread types, flow modes, trends, session phases.

Pure constants and tiny helpers; no I/O. The meaning of each term is in the docs (docs/market.md, docs/grid.md, docs/positions.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import numpy as np

# The exchange's zone: session dates, entry times (`entry_time_et`) and the calendar's hours are Eastern time.
ET = ZoneInfo("America/New_York")

REGIMES: tuple[str, ...] = ("very_low", "low", "medium", "high", "extreme")
REGIME_LEVEL: dict[str, int] = {name: level for level, name in enumerate(REGIMES)}

SPREAD_TYPES: tuple[str, ...] = ("iron_condor", "put_spread", "call_spread")
FLOW_MODES: tuple[str, ...] = ("neutral", "with_flow", "against_flow")
TRENDS: tuple[str, ...] = ("up", "down", "sideways")
TREND_CHOICES: tuple[str, ...] = (*TRENDS, "auto")
FLOWS: tuple[str, ...] = ("up", "down", "flat")
SESSION_PHASES: tuple[str, ...] = ("closed", "pre", "open", "after", "unknown")
# The phase of an instant outside the exchange calendar's range: no schedule says whether the market was open.
UNKNOWN_PHASE = "unknown"
LEGS: tuple[str, ...] = ("short_put", "long_put", "short_call", "long_call")

# Percentile band -> (lower tail percentile, upper tail percentile) of trailing signed moves.
# P100 means the observed min/max.
BANDS: dict[str, tuple[float, float]] = {
    "P95": (2.5, 97.5),
    "P97": (1.5, 98.5),
    "P98": (1.0, 99.0),
    "P99": (0.5, 99.5),
    "P100": (0.0, 100.0),
}


def legs_for(spread_type: str) -> tuple[str, ...]:
    """The legs a spread type needs."""
    if spread_type == "put_spread":
        return ("short_put", "long_put")
    if spread_type == "call_spread":
        return ("short_call", "long_call")
    if spread_type == "iron_condor":
        return LEGS
    raise ValueError(f"unknown spread type {spread_type!r}")


def flow_qualifies(flow_mode: str, spread_type: str, flow: str | None) -> bool:
    """Whether a config with `flow_mode` may be entered given the observed `flow` (up|down|flat|None).

    neutral always qualifies. with_flow: put spread after a down move, call spread after an up move,
    iron condor on any non-zero flow. against_flow: the reverse sides, iron condor on any non-zero flow.
    Unknown or flat flow admits only neutral configs.
    """
    if flow_mode == "neutral":
        return True
    if flow not in ("up", "down"):
        return False
    if spread_type == "iron_condor":
        return True
    if flow_mode == "with_flow":
        return (spread_type == "put_spread" and flow == "down") or (spread_type == "call_spread" and flow == "up")
    if flow_mode == "against_flow":
        return (spread_type == "put_spread" and flow == "up") or (spread_type == "call_spread" and flow == "down")
    return False


def flow_qualifies_array(flow_mode: Any, spread_type: Any, flow: Any) -> np.ndarray:
    """`flow_qualifies` element by element over arrays (or scalars broadcast against them): the one flow rule the
    scanner (grid rows against today's flow) and the grid builder (one config against each entry's gap) share.
    A flow other than up/down (flat, unknown, None, "") admits only neutral configs."""
    import numpy as np  # here, not at the top: the light CLI paths (positions list) import this module

    mode, spread, observed = np.broadcast_arrays(np.asarray(flow_mode, dtype=object),
                                                 np.asarray(spread_type, dtype=object),
                                                 np.asarray(flow, dtype=object))
    up, down = observed == "up", observed == "down"
    put, call, condor = spread == "put_spread", spread == "call_spread", spread == "iron_condor"
    with_flow = condor & (up | down) | put & down | call & up
    against = condor & (up | down) | put & up | call & down
    return np.asarray((mode == "neutral") | (mode == "with_flow") & with_flow | (mode == "against_flow") & against,
                      dtype=bool)
