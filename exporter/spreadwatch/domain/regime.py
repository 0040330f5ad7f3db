"""VIX regimes with hysteresis.

Pure functions over numbers: classify a VIX level, step the hysteresis rule from a previous regime, replay the
rule over a series. A missing or NaN VIX is unknown (None), never a regime; when the VIX returns, the rule resumes
from the last known regime.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from spreadwatch.domain.vocabulary import REGIME_LEVEL, REGIMES


def _is_number(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def classify(vix: float | None, boundaries: Mapping[str, float]) -> str | None:
    """The regime of a VIX level without hysteresis; None when the VIX is missing or NaN."""
    if not _is_number(vix):
        return None
    assert vix is not None
    regime = REGIMES[0]
    for name in REGIMES[1:]:
        if vix >= boundaries[name]:
            regime = name
    return regime


def step(previous: str | None, vix: float | None, boundaries: Mapping[str, float], hysteresis: float) -> str | None:
    """The regime after observing `vix`, given the last known regime.

    Leave `previous` only when the VIX is past the boundary by `hysteresis` points; an unknown VIX, or one that
    cannot be true (not > 0), gives None (the caller keeps `previous` as its last known regime).
    """
    raw = classify(vix, boundaries)
    if raw is None or vix is None or vix <= 0:
        return None
    if previous is None or raw == previous:
        return raw
    assert vix is not None
    # The candidate regime must hold even with the VIX moved back towards `previous` by the buffer.
    toward = vix - hysteresis if REGIME_LEVEL[raw] > REGIME_LEVEL[previous] else vix + hysteresis
    buffered = classify(toward, boundaries)
    assert buffered is not None
    if buffered == previous:
        return previous
    # Jumped across several regimes: land on the furthest one the buffered value supports.
    return buffered


def run(values: Iterable[float | None], boundaries: Mapping[str, float], hysteresis: float,
        start: str | None = None) -> list[str | None]:
    """Apply `step` over a series; each output is the regime after that value (None while unknown)."""
    last = start
    out: list[str | None] = []
    for vix in values:
        current = step(last, vix, boundaries, hysteresis)
        if current is not None:
            last = current
        out.append(current)
    return out
