"""One validator per kind of value a user can hand in: money, counts, instants, prices and levels, durations and
speeds. Every way in (the CLI's options, the config file, `positions import`, grid files) checks its values here,
so a value refused by one is refused by all, with the same words.

Each check demands a finite number, positive where a negative one means nothing, and within a bound that the
exchange calendar and the book (SQLite, 64-bit integers; money is stored in cents) can hold; the bound is named in
the refusal. Pure: raises `ValueRefused` (a ValueError), which callers name after their own field or option.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

# The bounds, named in every refusal.
MAX_MONEY = 1e12            # dollars for a whole position: far beyond any book, far inside int64 cents
MAX_COUNT = 1_000_000       # contracts of one position
MAX_SESSIONS = 20_000       # trading sessions (DTE): about 80 years, inside the calendar's range
MIN_YEAR = 1900             # instants and dates the exchange calendar can be asked about
MAX_YEAR = 2200
MAX_PRICE = 1e7             # an index level or a strike, index points
MAX_LEVEL = 1_000.0         # a volatility index (VIX) level
MAX_DURATION = 10 * 365 * 24 * 3600.0  # seconds: ten years
MAX_SPEED = 1e6             # replay seconds per wall second
MAX_NUMBER = 1e12           # any other setting: a ceiling far above every sensible value
MAX_TEXT = 10_000           # characters of a note or free text


class ValueRefused(ValueError):
    """A value that is not a valid value of its kind; the message says why and names the bound."""


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueRefused(f"{value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueRefused(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueRefused(f"{value!r} is not a finite number")
    return number


def number(value: Any) -> float:
    """Any finite number (its kind's bound is checked by the kind's validator)."""
    return _number(value)


def money(value: Any, *, positive: bool = False) -> float:
    """Dollars: finite, |x| <= MAX_MONEY; `positive` for a credit or a risk (> 0)."""
    number = _number(value)
    if positive and number <= 0:
        raise ValueRefused(f"must be > 0 dollars, got {number:g}")
    if abs(number) > MAX_MONEY:
        raise ValueRefused(f"{number:g} is beyond the largest amount accepted ({MAX_MONEY:g} dollars)")
    return number


def count(value: Any, *, minimum: int = 0, maximum: int = MAX_COUNT) -> int:
    """A whole number within [minimum, maximum] (an int or a float with no fraction; not a bool)."""
    if isinstance(value, bool):
        raise ValueRefused(f"{value!r} is not a whole number")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueRefused(f"{value!r} is not a whole number") from None
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueRefused(f"{value!r} is not a whole number")
        value = int(value)
    if not isinstance(value, int):
        raise ValueRefused(f"{value!r} is not a whole number")
    if value < minimum:
        raise ValueRefused(f"must be >= {minimum}, got {value}")
    if value > maximum:
        raise ValueRefused(f"{value} is above the largest accepted ({maximum:,})")
    return value


def sessions(value: Any) -> int:
    """Trading sessions (a DTE): 0..MAX_SESSIONS."""
    return count(value, minimum=0, maximum=MAX_SESSIONS)


def contracts(value: Any) -> int:
    """Contracts of a position: 1..MAX_COUNT."""
    return count(value, minimum=1, maximum=MAX_COUNT)


def price(value: Any, *, maximum: float = MAX_PRICE) -> float:
    """An index price or a strike: finite, > 0, <= MAX_PRICE index points."""
    return _positive(value, maximum, f"the largest accepted ({maximum:g})")


def level(value: Any) -> float:
    """A volatility index level (VIX): finite, > 0, <= MAX_LEVEL."""
    return price(value, maximum=MAX_LEVEL)


def duration(value: Any, *, allow_zero: bool = False, maximum: float = MAX_DURATION) -> float:
    """Seconds (or any time unit the caller converts to seconds first): finite, > 0 (>= 0 with `allow_zero`),
    <= MAX_DURATION (ten years)."""
    number = _number(value)
    if number < 0 or (number == 0 and not allow_zero):
        raise ValueRefused(f"must be {'>= 0' if allow_zero else '> 0'}, got {number:g}")
    if number > maximum:
        raise ValueRefused(f"{number:g} s is beyond the longest accepted ({maximum:g} s, ten years)")
    return number


def speed(value: Any) -> float:
    """A replay speed: finite, > 0, <= MAX_SPEED."""
    return _positive(value, MAX_SPEED, f"the fastest accepted ({MAX_SPEED:g}x)")


def _positive(value: Any, maximum: float, bound: str) -> float:
    """Finite, > 0 and <= `maximum` (named `bound` in the refusal)."""
    number = _number(value)
    if number <= 0:
        raise ValueRefused(f"must be > 0, got {number:g}")
    if number > maximum:
        raise ValueRefused(f"{number:g} is above {bound}")
    return number


def instant(value: datetime) -> datetime:
    """An instant within the years MIN_YEAR..MAX_YEAR (the range the exchange calendar is asked about)."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueRefused(f"{value.isoformat()} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    return value


def day(value: date) -> date:
    """A calendar date within MIN_YEAR..MAX_YEAR."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueRefused(f"{value.isoformat()} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    return value


def text(value: Any, *, maximum: int = MAX_TEXT) -> str:
    """Free text (a note, an id): a str of valid Unicode (no lone surrogates, which a terminal's invalid UTF-8
    becomes), at most `maximum` characters."""
    if not isinstance(value, str):
        raise ValueRefused(f"{value!r} is not text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueRefused("is not valid UTF-8 text") from None
    if len(value) > maximum:
        raise ValueRefused(f"is {len(value):,} characters, above the longest accepted ({maximum:,})")
    return value


def printable(value: str) -> str:
    """Text as shown on a terminal: control characters (ESC, BEL, CR...) and lone surrogates escaped as `\\x1b`,
    `\\u...`, so a note cannot move the cursor, retitle the window or hide what precedes it."""
    out = []
    for char in value:
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0 or 0xD800 <= code < 0xE000 or char in "\u2028\u2029":
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii")
                       if not 0xD800 <= code < 0xE000 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
