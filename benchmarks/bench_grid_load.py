"""Grid load: `load_grid` (read, validate every cell, flag impossible rows, scan-ready frame) against
`pandas.read_csv` of the same file, in time and peak memory, at 100,000 and 1,000,000 rows.

The file: the bundled SPX grid's data rows repeated to the size asked (a valid canonical grid, its impossible
rows included, so every check runs on every row), written to a temporary directory. The baseline is
`pandas.read_csv(path)` with its defaults: the least any pandas program does to have the file in memory, with no
validation at all, so "within 2x" means validating costs at most as much as reading. Each load runs in a fresh
process (its own peak RSS, `ru_maxrss`, nothing cached from a previous load); both processes import pandas first,
and the time is the load call only. Ours and the baseline alternate, round after round; medians. The target:
time at most 2x and peak RSS at most 2x the baseline's at each size; exit status 1 when missed.

Usage: python benchmarks/bench_grid_load.py [--rows 100000 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from spreadwatch.config import bundled_path

TARGET_TIME, TARGET_MEMORY = 2.0, 2.0

PROBE = """
import json, resource, sys, time
import pandas
kind, path = sys.argv[1], sys.argv[2]
if kind == "ours":
    from spreadwatch.edges.gridfile import load_grid
    t0 = time.perf_counter(); grid = load_grid(path); seconds = time.perf_counter() - t0; rows = grid.total_rows
else:
    t0 = time.perf_counter(); frame = pandas.read_csv(path); seconds = time.perf_counter() - t0; rows = len(frame)
print(json.dumps({"seconds": seconds, "rows": rows,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_grid(path: Path, rows: int) -> None:
    lines = bundled_path("grid_spx.csv").read_text().splitlines(keepends=True)
    header, data = lines[0], lines[1:]
    with path.open("w") as out:
        out.write(header)
        for i in range(rows):
            out.write(data[i % len(data)])


def run(kind: str, path: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", PROBE, kind, str(path)], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    missed = []
    print(f"median of {args.repeat} interleaved fresh processes each; busy shared 2-core machine")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            path = Path(tmp) / f"grid_{rows}.csv"
            write_grid(path, rows)
            results: dict[str, list[dict[str, float]]] = {"ours": [], "read_csv": []}
            for _ in range(args.repeat):
                for kind in results:
                    results[kind].append(run(kind, path))
            assert all(r["rows"] == rows for runs in results.values() for r in runs), "a load lost rows"
            t_ours, t_base = (statistics.median(r["seconds"] for r in results[k]) for k in ("ours", "read_csv"))
            m_ours, m_base = (statistics.median(r["peak_mib"] for r in results[k]) for k in ("ours", "read_csv"))
            time_ok, memory_ok = t_ours / t_base <= TARGET_TIME, m_ours / m_base <= TARGET_MEMORY
            if not (time_ok and memory_ok):
                missed.append(rows)
            print(f"{rows:>9,} rows ({path.stat().st_size / 2**20:.0f} MiB): load_grid {t_ours:.2f} s, "
                  f"{m_ours:.0f} MiB peak; pandas.read_csv {t_base:.2f} s, {m_base:.0f} MiB peak: "
                  f"time {t_ours / t_base:.2f}x ({'met' if time_ok else 'MISSED'}, target <= {TARGET_TIME}x), "
                  f"memory {m_ours / m_base:.2f}x ({'met' if memory_ok else 'MISSED'}, target <= {TARGET_MEMORY}x)")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
