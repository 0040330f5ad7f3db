"""`spreadwatch positions list` and `summary` on a book of 1,000 positions vs `sqlite-utils rows DB positions --fmt
simple` on the same file, measured in the same run.

Each command is a fresh process started through its console script in the same bin directory as this Python (the
wrappers pip writes; both pay the same interpreter start-up, neither pays a pyenv shim), output to /dev/null. The
commands run interleaved, round after round, after a warm-up round, and each is reported as its median wall time.
The target: each ratio at most 1.5 (a position command must not be slower than the generic tool); the script exits 1 otherwise.
Usage: python benchmarks/bench_positions.py [--positions 1000] [--open 400] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from spreadwatch.domain.positions import PositionInput, validate
from spreadwatch.edges.store import PositionBook

TARGET = 1.5
BIN = Path(sys.executable).parent
NOW = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)


def build_book(path: Path, total: int, open_count: int) -> None:
    """A book like a busy year's: iron condors, put and call spreads on NDX and SPX; `open_count` open, the rest
    closed with a realized P&L; every position with an add and an update (or close) in its history."""
    rng = random.Random(7)
    records = []
    for i in range(total):
        spread = ("iron_condor", "put_spread", "call_spread")[i % 3]
        ticker, price, step = ("NDX", 20_500, 10) if i % 4 else ("SPX", 6_000, 5)
        width = step * rng.choice((2, 5, 10))
        legs = {}
        if spread in ("put_spread", "iron_condor"):
            legs.update(short_put=price - 400 - step * rng.randrange(20), long_put=None)
            legs["long_put"] = legs["short_put"] - width
        if spread in ("call_spread", "iron_condor"):
            legs.update(short_call=price + 400 + step * rng.randrange(20), long_call=None)
            legs["long_call"] = legs["short_call"] + width
        contracts = rng.randint(1, 5)
        credit = round(width * 100 * contracts * rng.uniform(0.05, 0.3), 2)
        entry, _ = validate(PositionInput(ticker=ticker, spread=spread, band=rng.choice(("P95", "P97", "P98", "P99")),
                                          flow_mode=rng.choice(("neutral", "with_flow", "against_flow")),
                                          dte=rng.choice((0, 1, 3, 5)), contracts=contracts, credit=credit, risk=None,
                                          note=f"bench {i}", **legs), tickers=("NDX", "SPX"))
        entered = NOW - timedelta(days=total - i, minutes=rng.randrange(400))
        is_open = i >= total - open_count
        records.append((None, entry, {
            "entry_time": entered, "expiry": date(2026, 12, 4) if is_open else (entered + timedelta(days=3)).date(),
            "pnl": 0.0, "status": "open", "pnl_updated_at": entered, "closed_at": None}))
    with PositionBook(path) as book:
        ids = book.import_positions(records, now=NOW)
        for i, position_id in enumerate(ids):
            is_open = i >= total - open_count
            pnl = round(rng.uniform(-2.0, 0.6) * records[i][1].credit, 2)
            book.set_pnl(position_id, pnl, now=NOW, close=not is_open)


def wall(command: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--open", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    spreadwatch, sqlite_utils = BIN / "spreadwatch", BIN / "sqlite-utils"
    for script in (spreadwatch, sqlite_utils):
        if not script.exists():
            sys.exit(f"{script} not found: install the project (pip install -e .) in this Python")
    env = {**os.environ, "SPREADWATCH_CONFIG": "", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("SPREADWATCH_DB", None)

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "book.db"
        t0 = time.perf_counter()
        build_book(db, args.positions, args.open)
        print(f"book: {args.positions:,} positions ({args.open:,} open) built through PositionBook in "
              f"{time.perf_counter() - t0:.1f} s; {db.stat().st_size / 1024:.0f} KiB")
        commands = {
            "sqlite-utils rows DB positions --fmt simple": [str(sqlite_utils), "rows", str(db), "positions", "--fmt",
                                                            "simple"],
            "spreadwatch positions list": [str(spreadwatch), "positions", "list", "--db", str(db)],
            "spreadwatch positions list --include-closed": [str(spreadwatch), "positions", "list",
                                                            "--include-closed", "--db", str(db)],
            "spreadwatch positions summary": [str(spreadwatch), "positions", "summary", "--db", str(db)],
            # Not a baseline, a floor: what any Python command costs here before it does anything.
            "python -c pass (interpreter start-up)": [sys.executable, "-c", "pass"],
        }
        # Same book, same answer: the commands see every row.
        listed = json.loads(subprocess.run([*commands["spreadwatch positions list --include-closed"], "--json"],
                                           check=True, capture_output=True, text=True, env=env).stdout)
        rows = subprocess.run(commands["sqlite-utils rows DB positions --fmt simple"], check=True,
                              capture_output=True, text=True, env=env).stdout.splitlines()
        assert len(listed) == args.positions == len(rows) - 2, (len(listed), len(rows))

        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(args.repeat + 1):
            for name, command in commands.items():
                elapsed = wall(command, env)
                if round_:  # round 0 warms the page cache and the .pyc files
                    times[name].append(elapsed)

    base = statistics.median(times["sqlite-utils rows DB positions --fmt simple"])
    print(f"median wall time of {args.repeat} interleaved runs each (console scripts in {BIN}):")
    failed = False
    for name, samples in times.items():
        median = statistics.median(samples)
        if name.startswith("sqlite-utils"):
            print(f"  {name:<45} {median * 1000:7.1f} ms  (baseline)")
            continue
        if name.startswith("python"):
            print(f"  {name:<45} {median * 1000:7.1f} ms  (floor, for reference)")
            continue
        ratio = median / base
        failed |= ratio > TARGET
        print(f"  {name:<45} {median * 1000:7.1f} ms  {ratio:.2f}x  (target <= {TARGET}x)"
              f"{'' if ratio <= TARGET else '  FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
