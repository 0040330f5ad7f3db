"""store.py, the position book on disk: pragmas, schema and migrations, refusing foreign or corrupt files without
touching them, append-only history, ids by prefix, refused writes that leave nothing behind, all-or-nothing
import, the light read path, and the cheap look that tells the exporter the book changed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from spreadwatch.domain.positions import PositionInput, validate
from spreadwatch.edges.store import (
    APPLICATION_ID,
    BUSY_TIMEOUT_SECONDS,
    MIGRATIONS,
    BookWatch,
    PositionBook,
    read_positions,
)
from spreadwatch.errors import DataError, InputError

NOW = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
ENTRY = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
EXPIRY = date(2026, 11, 27)


def entry(**changes) -> PositionInput:
    raw = dict(ticker="NDX", spread="put_spread", band="P97", flow_mode="with_flow", dte=3, contracts=1,
               credit=200.0, risk=None, short_put=19500.0, long_put=19450.0, note="first")
    raw.update(changes)
    valid, _ = validate(PositionInput(**raw), tickers=("NDX", "SPX"))
    return valid


def state(**changes):
    out = {"entry_time": ENTRY, "expiry": EXPIRY, "pnl": 0.0, "status": "open", "pnl_updated_at": ENTRY,
           "closed_at": None}
    out.update(changes)
    return out


def snapshot(path: Path) -> tuple[list, list]:
    """Every row of both tables, read through a plain connection."""
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("SELECT * FROM positions ORDER BY id").fetchall(),
                conn.execute("SELECT * FROM history ORDER BY seq").fetchall())
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "book.db"


@pytest.fixture
def book(db: Path):
    with PositionBook(db) as b:
        yield b


# ---- pragmas and schema ----------------------------------------------------------------------------------------
def test_a_new_book_is_wal_with_a_busy_timeout_and_full_sync(book: PositionBook, db: Path):
    assert book.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert book.conn.execute("PRAGMA busy_timeout").fetchone()[0] == int(BUSY_TIMEOUT_SECONDS * 1000) > 0
    assert book.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert book.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    other = sqlite3.connect(db)  # WAL is a property of the file, not of one connection
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_schema_is_migrated_from_an_empty_file(db: Path):
    db.write_bytes(b"")
    with PositionBook(db) as book:
        assert book.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 1
        assert book.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        tables = {r[0] for r in book.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        triggers = {r[0] for r in book.conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert {"positions", "history"} <= tables
    assert triggers == {"history_no_update", "history_no_delete"}


def test_an_empty_sqlite_database_is_initialised_too(db: Path):
    sqlite3.connect(db).execute("VACUUM").connection.close()
    with PositionBook(db) as book:
        assert book.positions() == []


def test_reopening_keeps_the_rows_and_does_not_migrate_again(db: Path):
    with PositionBook(db) as book:
        added = book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    before = snapshot(db)
    with PositionBook(db) as book:
        assert book.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert [p.id for p in book.positions()] == [added.id]
    assert snapshot(db) == before


def test_a_book_from_a_newer_spreadwatch_is_refused(db: Path):
    PositionBook(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    for open_ in (PositionBook, read_positions):
        with pytest.raises(DataError, match="is newer than this spreadwatch understands"):
            open_(db)


# ---- foreign and corrupt files ---------------------------------------------------------------------------------
def foreign_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT)")
    conn.execute("INSERT INTO trades (symbol) VALUES ('NDX')")
    conn.commit()
    conn.close()


BAD_FILES = {
    "garbage": (lambda p: p.write_bytes(b"this is not a database, it is a shopping list\n" * 50),
                "not a SQLite database"),
    "short": (lambda p: p.write_bytes(b"SQLi"), "not a SQLite database"),
    "header then garbage": (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000), "unreadable"),
    "json": (lambda p: p.write_text('{"positions": []}\n'), "not a SQLite database"),
    "foreign sqlite": (foreign_db, "a SQLite database but not a spreadwatch position book"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_foreign_or_corrupt_files_are_a_data_error_and_left_byte_identical(kind: str, db: Path):
    make, message = BAD_FILES[kind]
    make(db)
    original = db.read_bytes()
    before = sorted(p.name for p in db.parent.iterdir())
    for open_ in (PositionBook, read_positions):
        with pytest.raises(DataError, match=message) as info:
            open_(db)
        assert str(db) in str(info.value) and "\n" not in str(info.value)
    assert db.read_bytes() == original
    assert sorted(p.name for p in db.parent.iterdir()) == before  # no -wal/-journal left behind


def test_a_directory_is_not_a_book(tmp_path: Path):
    with pytest.raises(DataError, match="is a directory"):
        PositionBook(tmp_path)


def test_read_positions_on_a_missing_file_is_an_error_and_creates_nothing(db: Path):
    with pytest.raises(DataError, match="no such file"):
        read_positions(db)
    assert not db.exists()


def test_a_book_being_created_reads_as_empty_and_is_not_touched(db: Path):
    # A writer creating the book leaves a 0-byte file, then an uncommitted schema, for a moment: a reader at that
    # moment sees an empty book (as PositionBook does), not an error.
    db.write_bytes(b"")
    assert read_positions(db) == []
    assert db.read_bytes() == b""
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE positions (id TEXT)")
    try:
        assert read_positions(db, timeout=1.0) == []
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# ---- history ---------------------------------------------------------------------------------------------------
def test_every_write_leaves_a_history_row(book: PositionBook):
    p = book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    book.set_pnl(p.id, 50.0, now=datetime(2026, 11, 24, 17, 0, tzinfo=UTC), note="half way")
    before, after = book.set_pnl(p.id[:4], 120.0, now=datetime(2026, 11, 24, 18, 0, tzinfo=UTC), close=True,
                                 note="closed at target")
    assert before.pnl == 50.0 and before.is_open
    assert after.status == "closed" and after.pnl == 120.0
    assert after.closed_at == datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    assert after.note == "first\nhalf way\nclosed at target"
    rows = [(h.action, h.old_pnl, h.new_pnl, h.note) for h in book.history(p.id)]
    assert rows == [("add", None, 0.0, "first"), ("update", 0.0, 50.0, "half way"),
                    ("close", 50.0, 120.0, "closed at target")]
    assert [h.time.hour for h in book.history(p.id)] == [16, 17, 18]


@pytest.mark.parametrize("sql", ["UPDATE history SET new_pnl = 999", "DELETE FROM history",
                                 "UPDATE history SET note = 'rewritten' WHERE seq = 1"])
def test_history_is_append_only(book: PositionBook, db: Path, sql: str):
    p = book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    book.set_pnl(p.id, 50.0, now=NOW)
    before = snapshot(db)
    conn = sqlite3.connect(db)  # even a plain connection, outside spreadwatch, cannot rewrite it
    with pytest.raises(sqlite3.DatabaseError, match="history is append-only"):
        conn.execute(sql)
    conn.rollback()
    conn.close()
    with pytest.raises(sqlite3.DatabaseError, match="history is append-only"):
        book.conn.execute(sql)
    assert snapshot(db) == before


def test_history_needs_an_existing_position(book: PositionBook):
    with pytest.raises(sqlite3.IntegrityError):
        book.conn.execute("INSERT INTO history (position_id, time, action, new_pnl) VALUES ('nope', 't', 'add', 0)")


# ---- ids -------------------------------------------------------------------------------------------------------
def test_new_ids_are_short_and_unique(book: PositionBook):
    ids = [book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW).id for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(len(i) == 6 and set(i) <= set("0123456789abcdef") for i in ids)


def test_new_ids_skip_ones_already_taken(book: PositionBook, monkeypatch: pytest.MonkeyPatch):
    import secrets  # the store imports it when it makes an id

    first = book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW).id
    tokens = iter([first, first, "0a0a0a"])
    real = secrets.token_hex  # sqlite-utils names its savepoints with token_hex(16) too
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(tokens) if n == 3 else real(n))
    assert book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW).id == "0a0a0a"


@pytest.fixture
def prefixed(book: PositionBook) -> PositionBook:
    book.import_positions([(i, entry(), state()) for i in ("abc123", "abc456", "abd789", "abc")], now=NOW)
    return book


@pytest.mark.parametrize("ref,expected", [("abc123", "abc123"), ("abc1", "abc123"), ("abc4", "abc456"),
                                          ("abd", "abd789"), ("abc", "abc"), ("  abd7 ", "abd789")])
def test_a_unique_prefix_or_a_full_id_resolves(prefixed: PositionBook, ref: str, expected: str):
    assert prefixed.resolve(ref) == expected
    assert prefixed.get(ref).id == expected


@pytest.mark.parametrize("ref,message", [
    ("ab", "ambiguous position id 'ab': matches abc, abc123, abc456, abd789; type more characters"),
    ("zz", "unknown position id 'zz'"),
    ("abc1234", "unknown position id 'abc1234'"),
    ("", "position id: empty"),
    ("%", "unknown position id '%'"),  # no LIKE wildcards
    ("_bc123", "unknown position id '_bc123'"),
])
def test_ambiguous_unknown_or_empty_ids_are_refused(prefixed: PositionBook, ref: str, message: str):
    with pytest.raises(InputError) as info:
        prefixed.resolve(ref)
    assert str(info.value) == message


def test_an_ambiguous_prefix_lists_at_most_five_matches(book: PositionBook):
    book.import_positions([(f"f{i}", entry(), state()) for i in range(8)], now=NOW)
    with pytest.raises(InputError, match=r"matches f0, f1, f2, f3, f4 and more; type more characters"):
        book.resolve("f")


# ---- refused writes leave nothing --------------------------------------------------------------------------------
def test_updating_a_closed_position_or_closing_twice_is_refused_and_nothing_is_written(book: PositionBook, db: Path):
    p = book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    book.set_pnl(p.id, 120.0, now=NOW, close=True)
    before = snapshot(db)
    with pytest.raises(InputError, match=f"position {p.id} is already closed; cannot update it"):
        book.set_pnl(p.id, 10.0, now=NOW, note="late")
    with pytest.raises(InputError, match=f"position {p.id} is already closed; cannot close it"):
        book.set_pnl(p.id[:3], 10.0, now=NOW, close=True)
    assert snapshot(db) == before
    assert not book.conn.in_transaction


def test_an_unknown_id_writes_nothing(book: PositionBook, db: Path):
    book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    before = snapshot(db)
    with pytest.raises(InputError, match="unknown position id"):
        book.set_pnl("nope", 1.0, now=NOW)
    assert snapshot(db) == before and not book.conn.in_transaction


def test_an_add_that_fails_half_way_leaves_no_position_without_history(book: PositionBook, db: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full, say")

    monkeypatch.setattr(book, "_history", broken)
    with pytest.raises(RuntimeError):
        book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    assert snapshot(db) == ([], [])


# ---- import ------------------------------------------------------------------------------------------------------
def test_import_keeps_ids_state_and_writes_one_history_row_each(book: PositionBook):
    closed = state(status="closed", pnl=142.5, closed_at=datetime(2026, 11, 25, 17, 0, tzinfo=UTC))
    ids = book.import_positions([("a3f8", entry(), state(pnl=20.0)), (None, entry(note="b"), closed)], now=NOW)
    assert ids[0] == "a3f8" and len(ids[1]) == 6
    a, b = book.get("a3f8"), book.get(ids[1])
    assert a.is_open and a.pnl == 20.0 and a.expiry == EXPIRY and a.entry_time == ENTRY
    assert b.status == "closed" and b.pnl == 142.5 and b.closed_at.hour == 17
    assert [(h.action, h.old_pnl, h.new_pnl) for h in book.history("a3f8")] == [("import", None, 20.0)]


def test_import_is_all_or_nothing(book: PositionBook, db: Path):
    existing = book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    before = snapshot(db)
    records = [("n1", entry(), state()), (None, entry(), state()), (existing.id, entry(), state()),
               ("n4", entry(), state())]
    with pytest.raises(InputError, match=f"position id '{existing.id}' is already in the book; nothing imported"):
        book.import_positions(records, now=NOW)
    assert snapshot(db) == before
    # A repeated id inside one file is caught the same way, after the first copy was inserted.
    with pytest.raises(InputError, match="'dup' is already in the book"):
        book.import_positions([("dup", entry(), state()), ("dup", entry(), state())], now=NOW)
    assert snapshot(db) == before


# ---- the read path -----------------------------------------------------------------------------------------------
def test_read_positions_matches_the_writer_and_filters_open(book: PositionBook, db: Path):
    a = book.add(entry(note="a"), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    b = book.add(entry(note="b"), entry_time=datetime(2026, 11, 24, 15, 0, tzinfo=UTC), expiry=EXPIRY, now=NOW)
    book.set_pnl(a.id, 10.0, now=NOW, close=True)
    every = read_positions(db)
    assert [p.id for p in every] == [b.id, a.id]  # oldest entry first
    assert every == book.positions()
    assert [p.id for p in read_positions(db, include_closed=False)] == [b.id]
    assert every[0].entry_time.tzinfo is not None and every[0].short_call is None


def test_readers_do_not_wait_for_a_writer(book: PositionBook, db: Path):
    book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE positions SET pnl = 99")
    try:
        t0 = time.perf_counter()
        [p] = read_positions(db, timeout=5.0)
        assert time.perf_counter() - t0 < 1.0
        assert p.pnl == 0.0  # the committed state, not the writer's uncommitted one
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_read_positions_does_not_import_sqlite_utils():
    import subprocess
    import sys

    code = ("import sys; from spreadwatch.edges.store import read_positions; "
            "print(sorted(m for m in ('sqlite_utils', 'pandas', 'exchange_calendars') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_reader_never_sees_a_book_half_created(tmp_path: Path):
    # The identity check reads application_id, user_version and the schema: from one snapshot, or a reader racing
    # the creator could see the header before the commit and the tables after it ("not a spreadwatch book").
    import threading

    errors: list[str] = []
    for i in range(60):
        path = tmp_path / f"b{i}.db"
        done = threading.Event()

        def read(path: Path = path, done: threading.Event = done) -> None:
            while not done.is_set():
                if path.exists():
                    try:
                        read_positions(path)
                    except DataError as exc:
                        errors.append(str(exc))

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.002)
        PositionBook(path).close()
        time.sleep(0.002)
        done.set()
        reader.join()
    assert errors == []


# ---- BookWatch: has the book changed since the last look? ------------------------------------------------------
def files(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_watch_sees_a_commit_from_another_connection_once(book: PositionBook, db: Path):
    watch = BookWatch(db)
    assert watch.changed() is False  # the first look is the baseline
    assert watch.changed() is False  # nothing happened
    book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    assert watch.changed() is True
    assert watch.changed() is False  # once per change
    other = sqlite3.connect(db)
    other.execute("PRAGMA user_version = 1")
    other.commit()
    other.close()
    assert watch.changed() is True
    watch.close()


def test_watch_does_not_see_reads_nor_its_own_looks(book: PositionBook, db: Path):
    book.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    watch = BookWatch(db)
    watch.changed()
    for _ in range(3):
        assert len(read_positions(db)) == 1  # how the exporter reads: must not look like a change
        assert watch.changed() is False
    watch.close()


def test_watch_sees_a_book_deleted_created_or_replaced(db: Path, tmp_path: Path):
    watch = BookWatch(db)
    assert watch.changed() is False  # missing: a state like any other
    assert watch.changed() is False
    assert not db.exists()  # the look never creates the book
    PositionBook(db).close()
    assert watch.changed() is True  # created
    assert watch.changed() is False
    other = tmp_path / "other.db"
    with PositionBook(other) as b:
        b.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    other.replace(db)  # replaced by another file (a restore from backup)
    assert watch.changed() is True
    assert watch.changed() is False
    db.unlink()
    assert watch.changed() is True  # deleted
    assert watch.changed() is False
    watch.close()


@pytest.mark.parametrize("kind", ["garbage", "header then garbage", "json"])
def test_watch_never_raises_on_a_corrupt_file_and_leaves_it_untouched(kind: str, db: Path):
    make, _ = BAD_FILES[kind]
    make(db)
    original, before = db.read_bytes(), files(db)
    watch = BookWatch(db)
    assert watch.changed() is False
    assert watch.changed() is False  # still the same unreadable file: no change
    assert db.read_bytes() == original and files(db) == before
    db.unlink()
    PositionBook(db).close()
    assert watch.changed() is True  # the corrupt file was replaced by a book
    assert watch.changed() is False
    watch.close()


def test_watch_on_a_directory_never_raises(tmp_path: Path):
    watch = BookWatch(tmp_path)
    assert watch.changed() is False
    assert watch.changed() is False


def test_watch_sees_every_write_of_commands_that_open_and_close_the_book(db: Path):
    # Each `spreadwatch positions add/update` is another process that opens the book, commits and closes it; closing
    # as the last connection it knows of (SQLite's locks are per process), it checkpoints and removes the -wal and
    # -shm files while the watch's connection stays open. Every one of those writes is a change, the first and
    # every later one; the exporter's reads in between are not.
    with PositionBook(db) as writer:
        position = writer.add(entry(), entry_time=ENTRY, expiry=EXPIRY, now=NOW)
    write = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA journal_mode = WAL'); "
             "c.execute('UPDATE positions SET pnl = ? WHERE id = ?', (float(sys.argv[2]), sys.argv[3])); "
             "c.commit(); c.close()")
    watch = BookWatch(db)
    watch.changed()
    for pnl in (10.0, 20.0, 30.0):
        assert len(read_positions(db)) == 1
        assert watch.changed() is False
        subprocess.run([sys.executable, "-c", write, str(db), str(pnl), position.id], check=True, timeout=30)
        assert watch.changed() is True, f"the update to {pnl} was not seen"
        assert watch.changed() is False
    assert read_positions(db)[0].pnl == 30.0
    watch.close()
