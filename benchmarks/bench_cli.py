"""CLI start-up: each `spreadwatch` command as a whole process against the plainest process doing the same work.

Baselines, each a fresh `python` process of this interpreter, timed in the same run:
- `positions add`, `update`, `close`: a standard-library sqlite3 script that writes the same rows to the same
  book with the same durability (WAL, synchronous=FULL, one BEGIN IMMEDIATE transaction): the position row (or
  its P&L change) and its history row. That is the least any Python tool can do to record a trade durably; it
  validates nothing, computes no expiry and prints nothing, so the ratio is what our checks and start-up cost.
- `positions list` (open positions) and `summary` (the whole book): a sqlite3 script that selects the same rows
  and prints them (list) or the counts and sums (summary). Both outputs are compared to ours before timing.
- `status --at` and `scan --at`: `python -c "import pandas"`. They read the bundled replay and grid; a process that
  only imports the library those need costs this much before reading a byte. They keep the grid they parsed in a
  store (edges/gridstore.py), here a fresh directory of this run filled by the warm-up round, as a trader's second
  and later runs find it; `status --at (grid parsed)` runs with the store off, the first run after the grid file
  changes, and is reported without a target.
- `--help`: `python -c "import click"`, the library the help text comes from.

Each command runs through the console script pip writes (`bin/spreadwatch`, as a user runs it), output to
/dev/null, from byte-compiled modules (as installed); rounds are interleaved (every command, then every baseline, round after round) after a warm-up round,
and each is reported as its median wall time with the ratio to its baseline, the target and met/missed.
The book holds `--positions` positions (`--open` open; each round closes two of them, ours and the baseline's).
Exit status 1 when a target is missed.

Usage: python benchmarks/bench_cli.py [--repeat 15] [--positions 200] [--open 80]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_positions import READ, build_book, compile_package, wall  # noqa: E402  (the same book, read script, timer)

BIN = Path(sys.executable).parent
PY = sys.executable
AT = "2019-01-02T14:35:00Z"  # an instant of the bundled replay day

WRITE = """
import sqlite3, sys, secrets
from datetime import datetime, timezone
db, action = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
conn.execute("PRAGMA journal_mode = WAL"); conn.execute("PRAGMA synchronous = FULL")
now = datetime.now(timezone.utc).isoformat()
conn.execute("BEGIN IMMEDIATE")
if action == "add":
    pid = secrets.token_hex(3)
    conn.execute("INSERT INTO positions (id, ticker, spread, band, flow_mode, dte, contracts, entry_time, expiry, "
                 "credit, risk, pnl, pnl_updated_at, status, short_put, long_put, short_call, long_call, note) "
                 "VALUES (?, 'SPX', 'put_spread', 'P95', 'neutral', 1, 1, ?, '2026-12-04', 100.0, 900.0, 0.0, ?, "
                 "'open', 5900.0, 5890.0, NULL, NULL, '')", [pid, now, now])
    old, new = None, 0.0
else:
    pid, new = sys.argv[3], float(sys.argv[4])
    old = conn.execute("SELECT pnl FROM positions WHERE id = ?", [pid]).fetchone()[0]
    if action == "close":
        conn.execute("UPDATE positions SET pnl = ?, pnl_updated_at = ?, status = 'closed', closed_at = ? "
                     "WHERE id = ?", [new, now, now, pid])
    else:
        conn.execute("UPDATE positions SET pnl = ?, pnl_updated_at = ? WHERE id = ?", [new, now, pid])
conn.execute("INSERT INTO history (position_id, time, action, old_pnl, new_pnl, note) VALUES (?, ?, ?, ?, ?, '')",
             [pid, now, action, old, new])
conn.execute("COMMIT")
print(pid)
"""



def check_same_answer(sw: str, db: str, env: dict[str, str]) -> None:
    """list and summary: our rows and figures are the baseline script's."""
    ours = json.loads(subprocess.run([sw, "positions", "list", "--json", "--db", db], check=True, env=env,
                                     capture_output=True, text=True).stdout)
    theirs = subprocess.run([PY, "-c", READ, db, "list"], check=True, capture_output=True, text=True).stdout
    assert [p["id"] for p in ours] == [line.split("  ")[0] for line in theirs.splitlines()], "list disagrees"
    summary = json.loads(subprocess.run([sw, "positions", "summary", "--json", "--db", db], check=True, env=env,
                                        capture_output=True, text=True).stdout)
    figures = dict(line.split(": ") for line in subprocess.run([PY, "-c", READ, db, "summary"], check=True,
                                                                capture_output=True, text=True).stdout.splitlines())
    assert (summary["total_count"], summary["open_count"]) == (int(figures["Total"]), int(figures["Open"])), \
        "summary disagrees"
    assert abs(summary["unrealized_pnl"] - float(figures["Unrealized"])) < 0.01, "summary disagrees"
    assert abs(summary["realized_pnl"] - float(figures["Realized"])) < 0.01, "summary disagrees"


def open_ids(db: str, count: int) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT id FROM positions WHERE status = 'open' ORDER BY id").fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows[:count]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--positions", type=int, default=200)
    parser.add_argument("--open", type=int, default=80)
    args = parser.parse_args()
    sw = str(BIN / "spreadwatch")
    if not Path(sw).exists():
        sys.exit(f"{sw} not found: install the project (pip install -e .) in this Python")
    env = {**os.environ, "SPREADWATCH_CONFIG": ""}
    env.pop("SPREADWATCH_DB", None)
    store = tempfile.TemporaryDirectory()  # the grid store of this run (filled by the warm-up round)
    env["SPREADWATCH_CACHE_DIR"] = store.name
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    compile_package()
    rounds = args.repeat + 1  # round 0 warms the page cache and the .pyc files
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "book.db")
        if args.open < 2 * rounds + 1:
            sys.exit(f"--open must be at least {2 * rounds + 1}: one position to update and two to close per round")
        build_book(Path(db), args.positions, args.open)
        closable = open_ids(db, args.open)
        check_same_answer(sw, db, env)
        add = ["--dte", "1", "--band", "P95", "--spread", "put_spread", "--contracts", "1", "--credit", "100",
               "--short-put", "5900", "--long-put", "5890", "--ticker", "SPX", "--db", db]
        # (name, our command, baseline name, baseline command, target ratio); ids are filled per round
        pairs = [
            ("positions add", [sw, "positions", "add", *add], "sqlite3 script: insert + history",
             [PY, "-c", WRITE, db, "add"], 3.0),
            ("positions update", [sw, "positions", "update", "{update}", "--pnl", "12.5", "--db", db],
             "sqlite3 script: update + history", [PY, "-c", WRITE, db, "update", "{update}", "12.5"], 3.0),
            ("positions close", [sw, "positions", "close", "{close}", "--pnl", "40", "--db", db],
             "sqlite3 script: close + history", [PY, "-c", WRITE, db, "close", "{close2}", "40"], 3.0),
            ("positions list", [sw, "positions", "list", "--db", db], "sqlite3 script: select + print",
             [PY, "-c", READ, db, "list"], 3.0),
            ("positions summary", [sw, "positions", "summary", "--db", db], "sqlite3 script: sums",
             [PY, "-c", READ, db, "summary"], 3.0),
            ("status --at", [sw, "status", "--at", AT, "--db", db], "python -c 'import pandas'",
             [PY, "-c", "import pandas"], 1.5),
            ("status --at (grid parsed)", ["env", "SPREADWATCH_CACHE_DIR=", sw, "status", "--at", AT, "--db", db],
             "python -c 'import pandas'", [PY, "-c", "import pandas"], None),
            ("scan --at", [sw, "scan", "--at", AT, "--vix", "13.5", "--flow", "up", "--price", "2500", "--db", db],
             "python -c 'import pandas'", [PY, "-c", "import pandas"], 1.5),
            ("--help", [sw, "--help"], "python -c 'import click'", [PY, "-c", "import click"], 1.5),
        ]
        ours: dict[str, list[float]] = {name: [] for name, *_ in pairs}
        base: dict[str, list[float]] = {name: [] for name, *_ in pairs}
        for round_ in range(rounds):
            ids = {"{update}": closable[0], "{close}": closable[1 + 2 * round_], "{close2}": closable[2 + 2 * round_]}
            for name, command, _, baseline, _ in pairs:
                mine = wall([ids.get(part, part) for part in command], env)
                theirs = wall([ids.get(part, part) for part in baseline], env)
                if round_:
                    ours[name].append(mine)
                    base[name].append(theirs)

    print(f"median wall time of {args.repeat} interleaved runs each (console script {sw}; book of "
          f"{args.positions:,} positions); busy shared 2-core machine")
    missed = []
    for name, _, base_name, _, target in pairs:
        mine, theirs = statistics.median(ours[name]), statistics.median(base[name])
        ratio = mine / theirs
        if target is None:
            verdict = "no target"
        else:
            verdict = f"target <= {target}x: " + ("met" if ratio <= target else "MISSED")
            if ratio > target:
                missed.append(name)
        print(f"  {name:<26} {mine * 1000:7.1f} ms  vs {base_name:<34} {theirs * 1000:7.1f} ms  {ratio:5.2f}x  "
              f"({verdict})")
    store.cleanup()
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
