"""Resident memory of the loop over 10,000 cycles of the bundled replay at full speed (no sleeping).

Each cycle is one market-data step (60 s of replay time); positions every cycle, scans every 5th, a snapshot
published and scraped every cycle. Reports RSS at cycle 1,000 and at the end; target: growth < 5 %.
Usage: python benchmarks/bench_memory.py [--cycles 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from exporter_support import START, make_service  # noqa: E402
from spreadwatch.domain.positions import PositionInput, validate  # noqa: E402
from spreadwatch.edges.collector import SnapshotCollector, build_registry, render  # noqa: E402
from spreadwatch.edges.store import PositionBook  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--checkpoint", type=int, default=1_000)
    args = parser.parse_args()
    process = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        service = make_service(Path(tmp), speed=1.0)
        with PositionBook(service.db_path) as book:  # a realistic book: read and exported every cycle
            for i in range(5):
                entry, _ = validate(PositionInput("NDX", "put_spread", "P98", "with_flow", 3, 1, 200.0 + i, None,
                                                  short_put=19500.0 - 50 * i, long_put=19450.0 - 50 * i),
                                    tickers=service.config.tickers)
                book.add(entry, entry_time=START, expiry=date(2026, 11, 27), now=START)
        registry = build_registry(SnapshotCollector(lambda: service.snapshot, lambda: service.snapshot.time))
        now = START
        rss_checkpoint = None
        t0 = time.perf_counter()
        for cycle in range(1, args.cycles + 1):
            due = {"market", "positions"} | ({"scan"} if cycle % 5 == 1 else set())
            service.step(now, due)
            render(registry)
            now += timedelta(seconds=60)
            if cycle == args.checkpoint:
                rss_checkpoint = process.memory_info().rss
        elapsed = time.perf_counter() - t0
        rss_end = process.memory_info().rss
        service.close()
    growth = (rss_end - rss_checkpoint) / rss_checkpoint * 100
    print(f"cycles: {args.cycles:,} in {elapsed:.0f} s ({elapsed / args.cycles * 1000:.1f} ms per cycle)")
    print(f"RSS at cycle {args.checkpoint:,}: {rss_checkpoint / 2**20:.1f} MiB")
    print(f"RSS at cycle {args.cycles:,}: {rss_end / 2**20:.1f} MiB")
    print(f"growth: {growth:+.2f} % (target < 5 %)")
    if growth >= 5:
        sys.exit(1)


if __name__ == "__main__":
    main()
