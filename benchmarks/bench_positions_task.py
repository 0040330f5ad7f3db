"""The exporter's positions task on a book of 10,000 positions (50 open), against reading the whole book the way
it did before (`read_positions` of every row, then `summarize`), measured in the same run.

Both read the same file each round with nothing written in between (the usual cycle: a book changes a few times a
day, the task runs every minute), interleaved round after round, CPU (`time.process_time`) per run, medians. The
baseline is fair because it is what the task did and what a straightforward reader would do: the same standard
library sqlite3 read, the same parsing of a row into a position, the same sums; the two give the same open
positions and the same sums (checked). The task as the loop runs it (`Service.positions_task`) also works out
sessions to expiry for the open positions, which the baseline does not: that cost is counted against the task.
Usage: python benchmarks/bench_positions_task.py [--positions 10000] [--open 50] [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_positions import NOW, build_book  # noqa: E402

from exporter_support import make_service  # noqa: E402
from spreadwatch.app.snapshot import Portfolio  # noqa: E402
from spreadwatch.domain.positions import summarize  # noqa: E402
from spreadwatch.edges.store import read_positions  # noqa: E402


def whole_book(db: Path) -> Portfolio:
    return Portfolio.of(summarize(read_positions(db, include_closed=True, timeout=2.0)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument("--open", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "book.db"
        build_book(db, args.positions, args.open)
        service = make_service(Path(tmp), db=db)
        now = NOW + timedelta(minutes=1)
        service.positions_task(now)  # the first read takes every row, as at start
        assert service._portfolio == whole_book(db), "the task's sums differ from reading the whole book"
        assert [p.position for p in service._open] == [p for p in read_positions(db) if p.is_open]
        task, baseline = [], []
        for round_ in range(args.repeat):
            runs = [("task", lambda: service.positions_task(now)), ("whole book", lambda: whole_book(db))]
            for name, run in runs if round_ % 2 == 0 else runs[::-1]:
                t0 = time.process_time()
                run()
                (task if name == "task" else baseline).append(time.process_time() - t0)
        service.close()
    t, b = statistics.median(task), statistics.median(baseline)
    print(f"positions task on {args.positions:,} positions ({args.open} open), nothing written between runs, "
          f"median CPU of {args.repeat} interleaved runs:")
    print(f"  the task (open rows + closed ones that changed): {t * 1000:8.2f} ms")
    print(f"  reading the whole book and summing it:           {b * 1000:8.2f} ms")
    print(f"  ratio: {t / b:.3f}x")


if __name__ == "__main__":
    main()
