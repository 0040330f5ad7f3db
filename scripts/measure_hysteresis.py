#!/usr/bin/env python3
"""Measure the regime hysteresis on real VIX history: regime changes per year with and without the buffer.

Data: the daily VIX closes the `arch` package ships offline (arch.data.vix, 2014-01-03..2019-01-03; holiday rows
are NaN and count as unknown, which the rule skips). Boundaries and the default buffer come from spreadwatch's
defaults (Config().regime). Daily closes only: the live loop sees minute values, where a VIX hovering at a boundary
flips far more often, so these figures are a lower bound on what the buffer saves intraday.

    python scripts/measure_hysteresis.py [--buffer 0.5 ...]
"""

from __future__ import annotations

import argparse
import math

from spreadwatch.config import Config
from spreadwatch.domain.regime import run


def changes(regimes: list[str | None]) -> int:
    known = [r for r in regimes if r is not None]
    return sum(a != b for a, b in zip(known, known[1:], strict=False))


def flip_backs(regimes: list[str | None], within: int = 5) -> int:
    """Changes undone within `within` values (A -> B -> A): the flapping the buffer is for."""
    known = [r for r in regimes if r is not None]
    starts = [i for i in range(1, len(known)) if known[i] != known[i - 1]]
    count = 0
    for i in starts:
        later = known[i:i + within + 1]
        if known[i - 1] in later[1:]:
            count += 1
    return count


def main() -> None:
    from arch.data import vix as vix_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buffer", type=float, action="append", help="buffers to try (default: 0, config default)")
    args = parser.parse_args()
    config = Config().regime
    buffers = args.buffer or [0.0, config.hysteresis]

    series = vix_data.load()["vix"]
    values = [float(v) if math.isfinite(v) else None for v in series.to_numpy()]
    first, last = series.index[0], series.index[-1]
    years = (last - first).days / 365.25
    known = sum(v is not None for v in values)
    print(f"arch VIX daily closes {first.date()}..{last.date()}: {known} values over {years:.2f} years")
    print(f"boundaries {config.boundaries}")
    baseline = None
    for buffer in buffers:
        regimes = run(values, config.boundaries, buffer)
        n = changes(regimes)
        baseline = baseline if baseline is not None else n
        ratio = f" ({n / baseline:.2f}x the first)" if baseline else ""
        print(f"buffer {buffer:.2f}: {n} regime changes, {n / years:.1f} per year{ratio}; "
              f"{flip_backs(regimes)} undone within 5 sessions")


if __name__ == "__main__":
    main()
