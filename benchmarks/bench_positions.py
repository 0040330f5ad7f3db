"""`spreadwatch positions list`, `list --include-closed` and `summary` on a book of 1,000 positions against the
plainest programs that print the same rows from the same file, measured in the same run.

Baselines (the fair ones: each reads the same SQLite file and prints the same answer, and does nothing else):
- a standard-library sqlite3 script (`python -c`, this interpreter): one SELECT of the same rows in the same
  order, printed as text; for `summary`, the counts and the sums of the same columns. It validates nothing, so
  the ratio is what our start-up (click, the package) and our checks of each row cost. Target: at most 3x.
- the `sqlite3` command-line shell (a C program: no interpreter to start), the same SELECT: the floor for
  reading this file at all. Reported, no target (no Python program can come near it). When `sqlite3` is not
  installed (apt package sqlite3), this anchor is skipped with a printed reason.
Before timing, each baseline's answer is checked against ours: the same ids in the same order for the lists, the
same counts and sums for the summary.

Each command is a fresh process, ours through its console script in the same bin directory as this Python (the
wrapper pip writes), byte-compiled as installed, output to /dev/null. The commands run interleaved, round after
round, after a warm-up round, and each is reported as its median wall time. Exit status 1 when a target is missed.
Usage: python benchmarks/bench_positions.py [--positions 1000] [--open 400] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from spreadwatch.domain.positions import PositionInput, validate
from spreadwatch.edges.store import PositionBook

TARGET = 3.0
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


# The baseline script: the same rows, in the same order, printed; or the summary's counts and sums.
READ = """
import sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
if sys.argv[2] == "summary":
    rows = conn.execute("SELECT status, risk, pnl FROM positions").fetchall()
    opened = [r for r in rows if r[0] == "open"]
    print(f"Total: {len(rows)}\\nOpen: {len(opened)}\\nClosed: {len(rows) - len(opened)}")
    print(f"Total Risk: {sum(r[1] for r in opened):.2f}")
    print(f"Unrealized: {sum(r[2] for r in opened):.2f}\\nRealized: {sum(r[2] for r in rows if r[0] != 'open'):.2f}")
else:
    where = "" if sys.argv[2] == "list-all" else " WHERE status = 'open'"
    for row in conn.execute("SELECT id, ticker, spread, band, dte, contracts, short_put, long_put, short_call, "
                            "long_call, credit, risk, pnl, expiry, status FROM positions" + where +
                            " ORDER BY entry_time, id"):
        print("  ".join("" if v is None else str(v) for v in row))
"""
COLUMNS_SQL = ("id, ticker, spread, band, dte, contracts, short_put, long_put, short_call, long_call, credit, risk, "
               "pnl, expiry, status")
SUMMARY_SQL = ("SELECT count(*), sum(status = 'open'), sum(status != 'open'), "
               "printf('%.2f', total(CASE WHEN status = 'open' THEN risk END)), "
               "printf('%.2f', total(CASE WHEN status = 'open' THEN pnl END)), "
               "printf('%.2f', total(CASE WHEN status != 'open' THEN pnl END)) FROM positions")


def compile_package() -> None:
    """Byte-compile the package, as pip does when it installs one, so every run starts from .pyc files."""
    import compileall

    import spreadwatch

    compileall.compile_dir(Path(spreadwatch.__file__).parent, quiet=1)


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
    spreadwatch = BIN / "spreadwatch"
    if not spreadwatch.exists():
        sys.exit(f"{spreadwatch} not found: install the project (pip install -e .) in this Python")
    sqlite_cli = shutil.which("sqlite3")
    if sqlite_cli is None:
        print("sqlite3 command-line shell not found (apt package sqlite3): its anchor is skipped")
    env = {**os.environ, "SPREADWATCH_CONFIG": ""}
    env.pop("SPREADWATCH_DB", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    compile_package()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "book.db"
        t0 = time.perf_counter()
        build_book(db, args.positions, args.open)
        print(f"book: {args.positions:,} positions ({args.open:,} open) built through PositionBook in "
              f"{time.perf_counter() - t0:.1f} s; {db.stat().st_size / 1024:.0f} KiB")
        groups = {  # ours, the sqlite3 script, the sqlite3 shell
            "positions list": ([str(spreadwatch), "positions", "list", "--db", str(db)],
                               [sys.executable, "-c", READ, str(db), "list"],
                               [f"SELECT {COLUMNS_SQL} FROM positions WHERE status = 'open' ORDER BY entry_time, id"]),
            "positions list --include-closed": (
                [str(spreadwatch), "positions", "list", "--include-closed", "--db", str(db)],
                [sys.executable, "-c", READ, str(db), "list-all"],
                [f"SELECT {COLUMNS_SQL} FROM positions ORDER BY entry_time, id"]),
            "positions summary": ([str(spreadwatch), "positions", "summary", "--db", str(db)],
                                  [sys.executable, "-c", READ, str(db), "summary"], [SUMMARY_SQL]),
        }
        commands: dict[str, list[str]] = {}
        for name, (ours, script, sql) in groups.items():
            commands[name] = ours
            commands[f"{name} | sqlite3 script"] = script
            if sqlite_cli:
                commands[f"{name} | sqlite3 shell"] = [sqlite_cli, "-readonly", str(db), *sql]
        commands["python -c pass (interpreter start-up)"] = [sys.executable, "-c", "pass"]
        check_same_answers(commands, env, args.positions)

        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(args.repeat + 1):
            for name, command in commands.items():
                elapsed = wall(command, env)
                if round_:  # round 0 warms the page cache
                    times[name].append(elapsed)

    print(f"median wall time of {args.repeat} interleaved runs each (console scripts in {BIN}); "
          "busy shared 2-core machine:")
    failed = False
    for name in groups:
        ours = statistics.median(times[name])
        script = statistics.median(times[f"{name} | sqlite3 script"])
        ratio = ours / script
        failed |= ratio > TARGET
        line = (f"  {name:<34} {ours * 1000:7.1f} ms; sqlite3 script {script * 1000:6.1f} ms: {ratio:4.2f}x "
                f"(target <= {TARGET}x: {'met' if ratio <= TARGET else 'MISSED'})")
        if sqlite_cli:
            shell = statistics.median(times[f"{name} | sqlite3 shell"])
            line += f"; sqlite3 shell {shell * 1000:5.1f} ms: {ours / shell:4.1f}x (floor, no target)"
        print(line)
    floor = statistics.median(times["python -c pass (interpreter start-up)"])
    print(f"  python -c pass (interpreter start-up, for reference): {floor * 1000:.1f} ms")
    sys.exit(1 if failed else 0)


def check_same_answers(commands: dict[str, list[str]], env: dict[str, str], total: int) -> None:
    """Every baseline prints the answer ours gives: the same ids in the same order, the same counts and sums."""
    def out(command: list[str]) -> str:
        return subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout

    for name, flag in (("positions list", []), ("positions list --include-closed", ["--include-closed"])):
        ours = [p["id"] for p in json.loads(out([*commands[name][:3], *flag, "--json",
                                                *commands[name][3 + len(flag):]]))]
        script = [line.split("  ")[0] for line in out(commands[f"{name} | sqlite3 script"]).splitlines()]
        assert ours == script, f"{name}: the sqlite3 script lists other rows"
        if f"{name} | sqlite3 shell" in commands:
            shell = [line.split("|")[0] for line in out(commands[f"{name} | sqlite3 shell"]).splitlines()]
            assert ours == shell, f"{name}: the sqlite3 shell lists other rows"
    assert len(ours) == total
    summary = json.loads(out([*commands["positions summary"][:3], "--json", *commands["positions summary"][3:]]))
    expected = (summary["total_count"], summary["open_count"], summary["closed_count"],
                f"{summary['total_risk']:.2f}", f"{summary['unrealized_pnl']:.2f}", f"{summary['realized_pnl']:.2f}")
    figures = dict(line.split(": ") for line in out(commands["positions summary | sqlite3 script"]).splitlines())
    assert (int(figures["Total"]), int(figures["Open"]), int(figures["Closed"]), figures["Total Risk"],
            figures["Unrealized"], figures["Realized"]) == expected, "summary: the sqlite3 script disagrees"
    if "positions summary | sqlite3 shell" in commands:
        cells = out(commands["positions summary | sqlite3 shell"]).strip().split("|")
        assert (int(cells[0]), int(cells[1]), int(cells[2]), *cells[3:]) == expected, \
            "summary: the sqlite3 shell disagrees"


if __name__ == "__main__":
    main()
