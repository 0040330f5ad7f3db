"""The exporter's reads of the book while another process keeps it open (a `sqlite3` shell, a dashboard's SQLite
source, a second exporter): every commit of a `spreadwatch positions` command must reach the next read.

The exporter's BookWatch holds no connection between its looks: one kept open would keep the WAL index (-shm)
mapped after a command in another process, closing the book as the last connection it knows of, removed the -wal
and -shm files; every new connection of the same process (BookReader's, each positions cycle) would share that
stale mapping. While no other process has the book open the command's close also checkpoints its commit into the
book file, so reads would stay right; once another process holds it open the commit lives only in the new -wal,
which a stale index does not list, and every read would return the old rows until the exporter restarted.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from spreadwatch.domain.positions import PositionInput, validate
from spreadwatch.edges.store import BookReader, BookWatch, PositionBook

NOW = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
ENTRY = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
EXPIRY = date(2026, 11, 27)
WRITE = ("import sys; from datetime import datetime, UTC; from spreadwatch.edges.store import PositionBook; "
         "book = PositionBook(sys.argv[1]); book.set_pnl(sys.argv[3], float(sys.argv[2]), "
         "now=datetime(2026, 11, 24, 16, 5, tzinfo=UTC)); book.close()")
HOLD = ("import sqlite3, sys; c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); "
        "c.execute('SELECT count(*) FROM positions').fetchone(); print('open', flush=True); sys.stdin.read()")


def write_pnl(db: Path, position_id: str, pnl: float) -> None:
    """What `spreadwatch positions update` does: another process opens the book, logs the P&L, closes it."""
    subprocess.run([sys.executable, "-c", WRITE, str(db), str(pnl), position_id], check=True, timeout=30)


def test_a_commit_reaches_the_exporters_read_while_another_process_holds_the_book(tmp_path: Path):
    db = tmp_path / "book.db"
    valid, _ = validate(PositionInput(ticker="SPX", spread="put_spread", band="P95", flow_mode="neutral", dte=3,
                                      contracts=1, credit=200.0, risk=None, short_put=2000.0, long_put=1990.0,
                                      note=""), tickers=("SPX",))
    with PositionBook(db) as writer:
        position = writer.add(valid, entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    watch, reader = BookWatch(db), BookReader(db)
    watch.changed()
    try:
        assert [p.pnl for p in reader.read().open_positions] == [0.0]
        write_pnl(db, position.id, 50.0)  # no other process: the command's close checkpoints and removes the -wal
        assert watch.changed() is True
        assert [p.pnl for p in reader.read().open_positions] == [50.0]
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
            write_pnl(db, position.id, 150.0)
            assert watch.changed() is True
            assert [p.pnl for p in reader.read().open_positions] == [150.0], "the exporter's read missed the commit"
        finally:
            holder.communicate("", timeout=30)
    finally:
        watch.close()
