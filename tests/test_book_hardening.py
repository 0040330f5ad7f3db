"""The book under stress: add and import refuse a value with the same words; a malformed row leaves the others
readable and writable and is listed by `positions check`; readers need only read access; the book and the event
log are private (0600); a note's control characters are printed escaped."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from spreadwatch.edges.cli import cli

PUT = ["--dte", "3", "--band", "P97", "--spread", "put_spread", "--contracts", "1", "--credit", "200",
       "--short-put", "19500", "--long-put", "19480"]
RECORD = {"entry_time": "2026-11-20T15:00:00Z", "dte": 3, "band": "P97", "spread": "put_spread", "contracts": 1,
          "credit": 200, "short_put": 19500, "long_put": 19480}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPREADWATCH_DB", raising=False)
    monkeypatch.setenv("SPREADWATCH_CONFIG", "")


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def add(db: Path, *args: str) -> str:
    result = run("positions", "add", "--db", str(db), "--json", *PUT, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


# ---- one validation for add and import --------------------------------------------------------------------------
@pytest.mark.parametrize("flag, key, value", [
    ("--dte", "dte", 10**20), ("--contracts", "contracts", 10**19), ("--contracts", "contracts", 0),
    ("--credit", "credit", 1e308), ("--credit", "credit", -5), ("--short-put", "short_put", 1e30),
    ("--long-put", "long_put", -19480), ("--risk", "risk", 1e300), ("--band", "band", "P42"),
])
def test_add_and_import_refuse_the_same_value_with_the_same_words(tmp_path: Path, flag: str, key: str,
                                                                 value: object):
    db = tmp_path / "book.db"
    args = list(PUT)
    if flag in args:
        args[args.index(flag) + 1] = str(value)
    else:
        args += [flag, str(value)]
    by_add = run("positions", "add", "--db", str(db), *args)
    (tmp_path / "in.json").write_text(json.dumps([{**RECORD, key: value}]))
    by_import = run("positions", "import", str(tmp_path / "in.json"), "--db", str(db))
    # On the command line the value is malformed (exit 2); in the imported file it is the file's bad content (1).
    assert (by_add.exit_code, by_import.exit_code) == (2, 1)
    reason = by_add.stderr.removeprefix("Error: --").strip().removesuffix(" (see 'cli positions add --help')")
    assert by_import.stderr.strip().endswith(f"positions[0]: {reason}; nothing imported"), (by_add.stderr,
                                                                                          by_import.stderr)
    assert not db.exists()


# ---- a malformed row ------------------------------------------------------------------------------------------
def test_a_malformed_row_is_reported_once_and_the_others_still_work(tmp_path: Path):
    db = tmp_path / "book.db"
    good, bad = add(db), add(db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE positions SET entry_time = 'garbage' WHERE id = ?", [bad])
    conn.close()
    listed = run("positions", "list", "--db", str(db))
    assert listed.exit_code == 0 and good in listed.stdout and bad not in listed.stdout
    assert [line for line in listed.stderr.splitlines() if bad in line] == [
        f"warning: position '{bad}': field entry_time is malformed ('garbage'); left out "
        "(`spreadwatch positions check` lists such rows)"]
    assert run("positions", "summary", "--db", str(db), "--json").exit_code == 0
    assert run("positions", "history", good, "--db", str(db)).exit_code == 0
    assert run("positions", "update", good, "--pnl", "50", "--db", str(db)).exit_code == 0
    assert run("positions", "add", "--db", str(db), *PUT).exit_code == 0
    history = run("positions", "history", bad, "--db", str(db))
    assert history.exit_code == 1 and "field entry_time is malformed" in history.stderr
    assert len(history.stderr.splitlines()) == 1
    check = run("positions", "check", "--db", str(db))
    assert check.exit_code == 1
    assert check.stdout.splitlines() == [f"position '{bad}': field entry_time is malformed ('garbage')"]
    assert "1 malformed row(s)" in check.stderr and "2 readable" in check.stderr


def test_check_on_a_clean_book_exits_0(tmp_path: Path):
    db = tmp_path / "book.db"
    add(db)
    check = run("positions", "check", "--db", str(db))
    assert check.exit_code == 0 and "every row readable" in check.stdout


# ---- read-only access -------------------------------------------------------------------------------------------
@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions (CAP_DAC_OVERRIDE): a read-only "
                    "file and directory cannot be made unwritable for root")
def test_readers_need_only_read_access(tmp_path: Path):
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "book.db"
    pid = add(db)
    db.chmod(0o400)
    folder.chmod(0o500)
    try:
        for args in (["list"], ["summary"], ["history", pid]):
            result = run("positions", *args, "--db", str(db))
            assert result.exit_code == 0, result.stderr
    finally:
        folder.chmod(0o700)



def _as_nobody(*argv: str) -> list[str]:
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]


def _nobody_can_run_python() -> bool:
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run(_as_nobody(sys.executable, "-c", "import spreadwatch"), capture_output=True, timeout=60)
    return probe.returncode == 0


@pytest.mark.skipif(not _nobody_can_run_python(), reason="needs root, setpriv and an interpreter that uid 65534 "
                    "can run (the read-only case as another user)")
def test_another_user_with_read_permission_reads_the_book(tmp_path: Path):
    """As root, the book's reader is another user (uid 65534) with read permission only: the file 0644 and its
    folder 0755, both root's. Every read command answers; nothing is created beside the book."""
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="spreadwatch-ro-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        db = folder / "book.db"
        pid = add(db)
        db.chmod(0o644)
        before = sorted(p.name for p in folder.iterdir())
        env = {**os.environ, "HOME": str(folder), "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "exporter")}
        for args in (["list"], ["summary"], ["history", pid], ["check"]):
            result = subprocess.run(_as_nobody(sys.executable, "-m", "spreadwatch", "positions", *args, "--db", str(db)),
                                    capture_output=True, text=True, timeout=120, cwd=folder, env=env)
            assert result.returncode == 0, (args, result.stderr)
            assert pid in result.stdout or args[0] in ("summary", "check"), (args, result.stdout)
        assert sorted(p.name for p in folder.iterdir()) == before
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)

def test_reading_leaves_the_directory_as_it_was(tmp_path: Path):
    db = tmp_path / "book.db"
    pid = add(db)
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (["list"], ["summary"], ["history", pid], ["check"]):
        assert run("positions", *args, "--db", str(db)).exit_code == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_readers_open_the_book_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    db = tmp_path / "book.db"
    pid = add(db)
    uris: list[str] = []
    connect = sqlite3.connect

    def recording(database, *args, **kwargs):
        uris.append(str(database))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", recording)
    for args in (["list"], ["summary"], ["history", pid]):
        uris.clear()
        assert run("positions", *args, "--db", str(db)).exit_code == 0
        assert uris[0].endswith("?mode=ro"), uris


# ---- private files ----------------------------------------------------------------------------------------------
def test_the_book_and_its_wal_files_are_created_0600(tmp_path: Path):
    old = os.umask(0o022)
    try:
        db = tmp_path / "sub" / "book.db"
        add(db)
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        with sqlite3.connect(db) as conn:  # holds the WAL files open while looking at them
            conn.execute("SELECT count(*) FROM positions").fetchone()
            for side in (Path(f"{db}-wal"), Path(f"{db}-shm")):
                assert stat.S_IMODE(side.stat().st_mode) == 0o600, side
        conn.close()
    finally:
        os.umask(old)


def test_the_event_log_is_created_0600(tmp_path: Path):
    import logging

    from spreadwatch.app.service import setup_logging
    from spreadwatch.config import parse_config

    old = os.umask(0o022)
    log_file = tmp_path / "logs" / "events.log"
    config = parse_config({"paths": {"log_file": str(log_file)}})
    root, events = logging.getLogger(), logging.getLogger("spreadwatch.events")
    saved = (list(root.handlers), list(events.handlers), events.propagate, root.level)
    try:
        setup_logging(config)
        assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    finally:
        os.umask(old)
        for handler in events.handlers + root.handlers:
            if handler not in saved[0] + saved[1]:
                handler.close()
        root.handlers[:], events.handlers[:] = saved[0], saved[1]
        events.propagate = saved[2]
        root.setLevel(saved[3])


# ---- control characters -----------------------------------------------------------------------------------------
def test_a_notes_control_characters_are_printed_escaped(tmp_path: Path):
    db = tmp_path / "book.db"
    pid = add(db, "--note", "\x1b]0;owned\x07hi\r")
    history = run("positions", "history", pid, "--db", str(db))
    assert history.exit_code == 0
    assert "\x1b" not in history.stdout and "\x07" not in history.stdout and "\r" not in history.stdout
    assert "\\x1b]0;owned\\x07hi\\r" in history.stdout
    as_json = json.loads(run("positions", "history", pid, "--db", str(db), "--json").stdout)
    assert as_json[0]["note"] == "\x1b]0;owned\x07hi\r"  # the data itself is kept as given
