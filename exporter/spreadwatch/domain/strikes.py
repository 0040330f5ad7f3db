"""Strike placement: short strikes at the band edges snapped away from the money, long legs one width further.

Pure arithmetic. A short strike that would sit at or through the money gives no strikes at all (None): the
original fell back to in-the-money strikes and reported impossible credits; we never do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from spreadwatch.domain.vocabulary import legs_for


@dataclass(frozen=True)
class Strikes:
    short_put: float | None = None
    long_put: float | None = None
    short_call: float | None = None
    long_call: float | None = None

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def label(self) -> str:
        """`19500P/20500C`, as the original's alert line shows the short legs."""
        parts = []
        if self.short_put is not None:
            parts.append(f"{self.short_put:g}P")
        if self.short_call is not None:
            parts.append(f"{self.short_call:g}C")
        return "/".join(parts)


@overload
def snap_down(value: float, increment: float) -> float: ...
@overload
def snap_down(value: np.ndarray, increment: float) -> np.ndarray: ...
def snap_down(value: Any, increment: float) -> Any:
    """The strike at or below `value` on the increment's grid (a put's short leg, away from the money).
    Takes a number or a numpy array (the grid builder snaps every entry at once)."""
    if isinstance(value, np.ndarray):
        return np.floor(value / increment + 1e-9) * increment
    return math.floor(value / increment + 1e-9) * increment


@overload
def snap_up(value: float, increment: float) -> float: ...
@overload
def snap_up(value: np.ndarray, increment: float) -> np.ndarray: ...
def snap_up(value: Any, increment: float) -> Any:
    """The strike at or above `value` on the increment's grid (a call's short leg, away from the money)."""
    if isinstance(value, np.ndarray):
        return np.ceil(value / increment - 1e-9) * increment
    return math.ceil(value / increment - 1e-9) * increment


def place_strikes(
    price: float, lower_move: float, upper_move: float, width: float, increment: float, spread_type: str
) -> Strikes | None:
    """Strikes for `spread_type` around `price`; None if a short strike would not be out of the money."""
    legs = legs_for(spread_type)
    values: dict[str, float] = {}
    if "short_put" in legs:
        short_put = snap_down(price * (1.0 + lower_move), increment)
        if short_put >= price:
            return None
        values["short_put"] = short_put
        values["long_put"] = short_put - width
    if "short_call" in legs:
        short_call = snap_up(price * (1.0 + upper_move), increment)
        if short_call <= price:
            return None
        values["short_call"] = short_call
        values["long_call"] = short_call + width
    return Strikes(**values)
