"""CPU of one market cycle of the loop at 20 tickers against the same cycle at 1 ticker, measured in the same run.

Each service is the real `Service` on the bundled replay day (SYNTHETIC SPX, 2019-01-02) held in memory, stepped
through the active session one market cycle (`step(now, {"market"})`: every ticker's fetch thread, the regime, the
volume ratio, the snapshot published and the event log) per replayed minute, so every cycle sees a new bar. CPU is
the process's (`time.process_time`, every thread), per cycle.

Three services, interleaved cycle by cycle (the order rotates every round), so a busy machine slows each alike:
- `1 ticker`: SPX alone: the baseline. It is the fair one because it is the same code on the same data at the same
  instants; the question is what each further ticker adds.
- `20 tickers, shared symbols`: SPX and 19 tickers on its symbols (^GSPC, ^VIX, SPY), as XSP shares SPX's.
- `20 tickers, own symbols`: 20 tickers each with its own price and volume symbol (copies of ^GSPC's and SPY's bars
  under 20 names, each made and fetched on its own), all sharing ^VIX (the regime and their vol index), as 20
  indexes would.
The first cycles (history fetched, prior sessions' volume totals built) are a warm-up and are not counted.
Target: each 20-ticker median at most 5x the 1-ticker median; the script exits 1 when one misses it.
Usage: python benchmarks/bench_loop.py [--cycles 300] [--warmup 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from exporter_support import make_service  # noqa: E402
from spreadwatch.config import Config, Ticker, bundled_path  # noqa: E402
from spreadwatch.edges.providers.replay import ReplayProvider  # noqa: E402

TARGET = 5.0
OPEN = datetime(2019, 1, 2, 14, 30, tzinfo=UTC)
GRID = bundled_path("grid_spx.csv")


def with_copies(provider: ReplayProvider, copies: dict[str, str]) -> ReplayProvider:
    """The provider with each `copies` name holding its own copy of the rows of the symbol it names."""
    for name, source in copies.items():
        provider._rows[name] = list(provider._rows[source])
        provider._times[name] = list(provider._times[source])
        provider._intraday_days[name] = set(provider._intraday_days[source])
    return provider


def services(tmp: Path) -> dict[str, object]:
    spx = Ticker("^GSPC", "^VIX", "SPY", 5.0)
    one = Config(tickers={"SPX": spx})
    shared = Config(tickers={"SPX": spx, **{f"SPX{i:02d}": spx for i in range(1, 20)}})
    own = Config(tickers={f"IDX{i:02d}": Ticker(f"IDX{i:02d}", "^VIX", f"VOL{i:02d}", 5.0) for i in range(20)})
    copies = {f"IDX{i:02d}": "^GSPC" for i in range(20)} | {f"VOL{i:02d}": "SPY" for i in range(20)}
    made = {}
    for name, config, provider in (
        ("1 ticker", one, ReplayProvider(bundled_path("replay_sample.csv"), bundled=True)),
        ("20 tickers, shared symbols", shared, ReplayProvider(bundled_path("replay_sample.csv"), bundled=True)),
        ("20 tickers, own symbols", own,
         with_copies(ReplayProvider(bundled_path("replay_sample.csv"), bundled=True), copies)),
    ):
        folder = tmp / name.replace(" ", "_").replace(",", "")
        folder.mkdir()
        made[name] = make_service(folder, provider, start=OPEN, config=config, tickers=tuple(config.tickers),
                                  grid=GRID)
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    if args.warmup + args.cycles > 389:
        parser.error("the replayed session has 390 minutes: --warmup + --cycles must be at most 389")
    with tempfile.TemporaryDirectory() as tmp:
        made = services(Path(tmp))
        names = list(made)
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for cycle in range(args.warmup + args.cycles):
            now = OPEN + timedelta(minutes=1 + cycle)
            order = names[cycle % len(names):] + names[:cycle % len(names)]
            for name in order:
                t0 = time.process_time()
                made[name].step(now, {"market"})
                spent = time.process_time() - t0
                if cycle >= args.warmup:
                    cpu[name].append(spent)
        for name, service in made.items():
            ctx = service.snapshot.contexts
            assert all(c.price is not None and c.volume_ratio is not None for c in ctx.values()), name
            assert service.snapshot.tasks["market"].ok, (name, service.snapshot.tasks["market"].error)
            service.close()
    base = statistics.median(cpu["1 ticker"])
    print(f"CPU per market cycle, median of {args.cycles} cycles each (interleaved; {args.warmup} warm-up cycles "
          f"not counted), on the bundled replay's active session:")
    missed = []
    for name in names:
        median = statistics.median(cpu[name])
        ratio = median / base
        verdict = "" if name == "1 ticker" else (" (target <= 5x met)" if ratio <= TARGET else " (target <= 5x MISSED)")
        print(f"  {name:28s} {median * 1000:7.2f} ms  {ratio:5.2f}x{verdict}")
        if ratio > TARGET:
            missed.append(name)
    if missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
