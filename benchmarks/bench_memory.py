"""Resident memory of the loop over 10,000 cycles of ACTIVE sessions: a new bar every cycle, never stale data.

The market data is a synthetic replay held in memory (written to a temporary file and read by the replay provider):
minute bars of ^GSPC, ^VIX and SPY for 27 consecutive sessions, SPY's minute bars for the 20 sessions before them
(the volume ratio's history) and daily bars of ^GSPC and ^VIX for 320 sessions before that (IV rank, bands). SPX is
watched with the bundled SPX grid (`exporter/spreadwatch/data/grid_spx.csv`, scanned every 5th cycle) and a book of
five open positions (read every cycle); the snapshot is published and rendered as a scrape every cycle. A cycle is
one replayed minute of a session; after a session's last minute the next cycle is the next session's first, so
every cycle sees a new bar (the script counts the cycles whose price was current and whose volume ratio was known,
and fails if that is not all of them past the first session's start).

RSS (psutil) at cycle 1,000 (everything built and warm) and at the end. Target: growth under 2 %. The baseline is
the same process at cycle 1,000: memory that grows with the cycles is what would exhaust a long-running exporter.
`--trace` (diagnostics; the figures are the same run's) also prints, every checkpoint and at each cycle at which
RSS rose 256 KiB or more past its highest so far: the replayed instant, whether the scan ran, the live threads,
Python's small-object arenas (current and most), and glibc's own account of its heap (`mallinfo2`: bytes obtained
from the system in arenas and in mmap'd blocks, bytes in use, bytes free). Together they tell memory the program
holds from memory an allocator keeps.
Usage: python benchmarks/bench_memory.py [--cycles 10000] [--checkpoint 1000] [--scan-every 5] [--trace]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import math
import random
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from exporter_support import make_service  # noqa: E402
from spreadwatch.config import bundled_path  # noqa: E402
from spreadwatch.domain.positions import PositionInput, validate  # noqa: E402
from spreadwatch.edges.calendar import MarketCalendar  # noqa: E402
from spreadwatch.edges.collector import SnapshotCollector, build_registry, render  # noqa: E402
from spreadwatch.edges.providers.replay import ReplayProvider  # noqa: E402
from spreadwatch.edges.store import PositionBook  # noqa: E402

TARGET_PERCENT = 2.0
ACTIVE_SESSIONS = 27
VOLUME_SESSIONS = 20
DAILY_SESSIONS = 320
LAST_DAY = date(2025, 6, 27)


def write_replay(path: Path, calendar: MarketCalendar) -> list[date]:
    """The synthetic replay file; returns the active sessions."""
    rng = random.Random(20250627)
    sessions = calendar.sessions_in_range(LAST_DAY - timedelta(days=700), LAST_DAY)
    active = sessions[-ACTIVE_SESSIONS:]
    volume_days = sessions[-(ACTIVE_SESSIONS + VOLUME_SESSIONS):]
    daily_days = sessions[-(ACTIVE_SESSIONS + DAILY_SESSIONS):-ACTIVE_SESSIONS]
    price, vix = 5000.0, 16.0
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    for day in daily_days:
        price *= math.exp(rng.gauss(0, 0.01))
        vix = min(40.0, max(10.0, vix + rng.gauss(0, 0.8)))
        lines += [f"{day},^GSPC,{price:.2f},{price * 1.004:.2f},{price * 0.996:.2f},{price:.2f},0",
                  f"{day},^VIX,{vix:.2f},{vix:.2f},{vix:.2f},{vix:.2f},0"]
    for day in volume_days:
        open_, close = calendar.open_close(day)
        minutes = int((close - open_).total_seconds() // 60)
        for m in range(1, minutes + 1):
            stamp = (open_ + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")
            spy = price / 10
            lines.append(f"{stamp},SPY,{spy:.3f},{spy:.3f},{spy:.3f},{spy:.3f},{rng.randint(500_000, 1_500_000)}")
            if day in active:
                price *= math.exp(rng.gauss(0, 0.0005))
                vix = min(40.0, max(10.0, vix + rng.gauss(0, 0.02)))
                lines += [f"{stamp},^GSPC,{price:.2f},{price:.2f},{price:.2f},{price:.2f},0",
                          f"{stamp},^VIX,{vix:.2f},{vix:.2f},{vix:.2f},{vix:.2f},0"]
    path.write_text("\n".join(lines) + "\n")
    return active


def add_positions(service, entry_time) -> None:  # type: ignore[no-untyped-def]
    with PositionBook(service.db_path) as book:  # a realistic book: read and exported every cycle
        for i in range(5):
            entry, _ = validate(PositionInput("SPX", "put_spread", "P98", "with_flow", 5, 1, 120.0 + i, None,
                                              short_put=4500.0 - 25 * i, long_put=4475.0 - 25 * i),
                                tickers=service.config.tickers)
            book.add(entry, entry_time=entry_time, expiry=LAST_DAY + timedelta(days=7), now=entry_time)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def malloc_account():  # type: ignore[no-untyped-def]
    """glibc's `mallinfo2()` (the heap malloc serves; Python's own arenas are mapped apart) as a function returning (arena, mmap'd, in use, free) bytes; None off glibc."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _MallInfo2

    def account() -> tuple[int, int, int, int]:
        info = libc.mallinfo2()
        return info.arena, info.hblkhd, info.uordblks, info.fordblks

    return account


def pymalloc_arenas() -> str:
    """Python's small-object allocator's arenas now and at most (from `sys._debugmallocstats`, which writes to the
    process's stderr): arenas stay while any object in them lives, so they can outlast the objects' count."""
    import os

    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        stats = dict((k.strip(), v) for k, v in (line.split("=", 1) for line in out.read().decode().splitlines() if line.startswith("# arenas")
                     and "=" in line))
    keep = {"# arenas allocated current": "current", "# arenas highwater mark": "at most"}
    return ", ".join(f"{label} {stats[key].strip()}" for key, label in keep.items() if key in stats)


def trace_line(cycle: int, now, scan: bool, rss: int, rise: int, account) -> str:  # type: ignore[no-untyped-def]
    mib = 2 ** 20
    heap = f"; pymalloc arenas: {pymalloc_arenas()}"
    if account is not None:
        arena, mapped, used, free = account()
        heap += (f"; malloc: arenas {arena / mib:.1f} MiB, mmap'd {mapped / mib:.1f} MiB, in use {used / mib:.1f} MiB, "
                f"free {free / mib:.1f} MiB")
    return (f"trace: cycle {cycle:,} at {now:%Y-%m-%d %H:%M}Z{' (scan)' if scan else ''}: RSS {rss / mib:.1f} MiB "
            f"(+{rise / 1024:.0f} KiB past its high); threads {threading.active_count()}{heap}")


def cycle_instants(calendar: MarketCalendar, active: list[date]):  # type: ignore[no-untyped-def]
    for day in active:
        open_, close = calendar.open_close(day)
        for m in range(1, int((close - open_).total_seconds() // 60) + 1):
            yield open_ + timedelta(minutes=m)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--checkpoint", type=int, default=1_000)
    parser.add_argument("--scan-every", type=int, default=5, help="a scan every N cycles; 0: none (to tell the "
                        "scan's share of the memory from the rest of the loop's)")
    parser.add_argument("--trace", action="store_true", help="print each cycle at which RSS rose past its high, "
                        "with glibc's account of its heap")
    args = parser.parse_args()
    account = malloc_account() if args.trace else None
    high = 0
    process = psutil.Process()
    calendar = MarketCalendar()
    with tempfile.TemporaryDirectory() as tmp:
        replay = Path(tmp) / "sessions.csv"
        active = write_replay(replay, calendar)
        instants = list(cycle_instants(calendar, active))[:args.cycles]
        if len(instants) < args.cycles:
            parser.error(f"the synthetic replay has {len(instants)} active minutes; ask for at most that many")
        start = instants[0]
        service = make_service(Path(tmp), ReplayProvider(replay), start=start, tickers=("SPX",),
                               grid=bundled_path("grid_spx.csv"))
        add_positions(service, start - timedelta(days=1))
        registry = build_registry(SnapshotCollector(lambda: service.snapshot, lambda: service.snapshot.time))
        rss_checkpoint = None
        series = []  # (cycle, RSS, Python's allocated blocks) every checkpoint: a leak climbs, a cache steps
        fresh = 0
        t0 = time.perf_counter()
        for cycle, now in enumerate(instants, start=1):
            scan = args.scan_every > 0 and cycle % args.scan_every == 1 % args.scan_every
            due = {"market", "positions"} | ({"scan"} if scan else set())
            service.step(now, due)
            render(registry)
            ctx = service.snapshot.contexts["SPX"]
            if ctx.price is not None and ctx.sources["^GSPC"].current and ctx.volume_ratio is not None:
                fresh += 1
            if args.trace:
                rss = process.memory_info().rss
                if high and rss - high >= 256 * 1024:
                    print(trace_line(cycle, now, scan, rss, rss - high, account), flush=True)
                high = max(high, rss)
            if cycle == args.checkpoint:
                rss_checkpoint = process.memory_info().rss
            if cycle % args.checkpoint == 0:
                series.append((cycle, process.memory_info().rss, sys.getallocatedblocks()))
                if args.trace:
                    print(trace_line(cycle, now, scan, series[-1][1], 0, account), flush=True)
        elapsed = time.perf_counter() - t0
        rss_end = process.memory_info().rss
        opportunities = len(service.snapshot.scans["SPX"].opportunities) if "SPX" in service.snapshot.scans else 0
        service.close()
    assert rss_checkpoint is not None
    growth = (rss_end - rss_checkpoint) / rss_checkpoint * 100
    print(f"cycles: {args.cycles:,} over {len({i.date() for i in instants})} active sessions in {elapsed:.0f} s "
          f"({elapsed / args.cycles * 1000:.1f} ms per cycle, wall)")
    print(f"cycles with a current price and a known volume ratio: {fresh:,} of {args.cycles:,}; "
          f"opportunities at the end: {opportunities}")
    print("cycle, RSS MiB, Python objects' blocks: " + "; ".join(
        f"{c:,} {rss / 2**20:.1f} {blocks:,}" for c, rss, blocks in series))
    print(f"RSS at cycle {args.checkpoint:,}: {rss_checkpoint / 2**20:.1f} MiB")
    print(f"RSS at cycle {args.cycles:,}: {rss_end / 2**20:.1f} MiB")
    verdict = "met" if growth < TARGET_PERCENT else "MISSED"
    print(f"growth: {growth:+.2f} % (target < {TARGET_PERCENT:g} %: {verdict})")
    if fresh < args.cycles or growth >= TARGET_PERCENT:
        sys.exit(1)


if __name__ == "__main__":
    main()
