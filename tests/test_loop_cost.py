"""What one loop cycle costs: shared symbols fetched once per cycle whatever the number of tickers, the volume ratio
kept up to date from new bars instead of re-walking twenty sessions, the positions task reading only the open
positions and what changed. Each is held equal to the straightforward computation it replaces."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from exporter_support import CountingProvider, Running, make_service
from spreadwatch.config import Config, Ticker

# The bundled replay day (SYNTHETIC SPX, 2019-01-02): 10:00 ET, an hour into the session.
SPX_DAY = datetime(2019, 1, 2, 15, 0, tzinfo=UTC)


def _sharing_config(count: int) -> Config:
    """SPX and `count - 1` more tickers on the same symbols (^GSPC, ^VIX, SPY), as XSP shares SPX's."""
    spx = Ticker("^GSPC", "^VIX", "SPY", 5.0)
    return Config(tickers={"SPX": spx, **{f"SPX{i}": spx for i in range(1, count)}})


def _questions_per_cycle(tmp_path, count: int, cycles: int) -> list[Counter]:
    config = _sharing_config(count)
    provider = CountingProvider()
    service = make_service(tmp_path, provider, start=SPX_DAY, config=config, tickers=tuple(config.tickers))
    per_cycle = []
    with Running(service) as running:
        per_cycle.append(Counter(provider.take()))  # the first cycle
        for _ in range(cycles - 1):
            running.step()
            per_cycle.append(Counter(provider.take()))
    assert all(service.snapshot.contexts[t].price is not None for t in config.tickers)
    return per_cycle


def test_a_symbol_shared_by_several_tickers_is_fetched_once_per_cycle(tmp_path):
    one = _questions_per_cycle(tmp_path / "one", 1, 4)
    five = _questions_per_cycle(tmp_path / "five", 5, 4)
    for cycle, asked in enumerate(five):
        # Each question (method, symbol, arguments) once per cycle ...
        assert max(asked.values()) == 1, (cycle, [q for q, n in asked.items() if n > 1])
        # ... and five tickers on the same symbols ask exactly what one ticker asks.
        assert asked == one[cycle]
    later = five[-1]
    assert sum(1 for q in later if q[1] == "^VIX") == 2  # its newest quote and today's bars, for every ticker
    assert {q[1] for q in later} == {"^GSPC", "^VIX", "SPY"}
