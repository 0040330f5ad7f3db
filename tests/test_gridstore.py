"""The store of parsed grids: what it hands back is what parsing the file gives, and any doubt means a parse."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from spreadwatch.config import bundled_path
from spreadwatch.edges import gridfile, gridstore
from spreadwatch.errors import DataError

SAMPLE = Path(__file__).parent / "data"


def _parses(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Count the parses: every load_grid call the store makes."""
    calls: list[Path] = []
    real = gridfile.load_grid

    def counting(path, **kwargs):
        calls.append(Path(path))
        return real(path, **kwargs)

    monkeypatch.setattr(gridstore, "load_grid", counting)
    return calls


def _same(a: gridfile.Grid, b: gridfile.Grid) -> None:
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert (a.path, a.format, a.total_rows, a.skipped_rows, a.mtime, a.skipped_by_reason) == \
        (b.path, b.format, b.total_rows, b.skipped_rows, b.mtime, b.skipped_by_reason)


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    path = tmp_path / "grid.csv"
    shutil.copyfile(bundled_path("grid_spx.csv"), path)
    return path


def test_the_second_load_is_the_parse_without_parsing(grid: Path, grid_store: Path, monkeypatch: pytest.MonkeyPatch):
    parses = _parses(monkeypatch)
    first = gridstore.load(grid)
    second = gridstore.load(grid)
    assert parses == [grid]  # one parse, then the entry
    _same(second, gridfile.load_grid(grid))
    _same(first, second)
    assert len(list(grid_store.glob("*.pickle"))) == 1


@pytest.mark.parametrize("name", ["grid_analysis_sample.csv", "grid_dte1_sample.csv", "trading_ready_sample.csv"])
def test_each_format_and_setting_has_its_own_entry(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / name
    shutil.copyfile(SAMPLE / "grids" / name, path)  # the original's files: most of their rows are impossible
    parses = _parses(monkeypatch)
    for skip in (True, False, True, False):
        _same(gridstore.load(path, skip_impossible=skip), gridfile.load_grid(path, skip_impossible=skip))
    assert len(parses) == 2
    assert gridstore.load(path, skip_impossible=True).skipped_rows > 0


def test_an_edited_grid_is_parsed_again(grid: Path, monkeypatch: pytest.MonkeyPatch):
    parses = _parses(monkeypatch)
    before = gridstore.load(grid)
    lines = grid.read_text().splitlines(keepends=True)
    grid.write_text("".join(lines[:101]))  # the header and 100 rows; same path
    after = gridstore.load(grid)
    assert len(parses) == 2 and after.total_rows == 100 != before.total_rows
    _same(after, gridfile.load_grid(grid))


def test_a_touched_grid_is_parsed_again(grid: Path, monkeypatch: pytest.MonkeyPatch):
    parses = _parses(monkeypatch)
    gridstore.load(grid)
    st = grid.stat()
    os.utime(grid, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    gridstore.load(grid)
    assert len(parses) == 2


@pytest.mark.parametrize("damage", [b"", b"not a pickle", None])
def test_a_damaged_entry_is_a_miss_and_is_rewritten(damage: bytes | None, grid: Path, grid_store: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    gridstore.load(grid)
    (entry,) = grid_store.glob("*.pickle")
    good = entry.read_bytes()
    entry.write_bytes(good[: len(good) // 2] if damage is None else damage)  # truncated, empty, garbage
    parses = _parses(monkeypatch)
    _same(gridstore.load(grid), gridfile.load_grid(grid))
    assert len(parses) == 1
    assert entry.read_bytes() != (damage if damage is not None else good[: len(good) // 2])
    gridstore.load(grid)
    assert len(parses) == 1  # rewritten: the next load is a hit


def test_an_entry_of_another_file_is_not_used(grid: Path, grid_store: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch):
    other = tmp_path / "other.csv"
    other.write_text("".join(grid.read_text().splitlines(keepends=True)[:51]))
    gridstore.load(grid)
    gridstore.load(other)
    entries = sorted(grid_store.glob("*.pickle"), key=lambda p: p.stat().st_size)
    # the small grid's entry put where the big one's is: its key names the other file, so it is a miss
    shutil.copyfile(entries[0], entries[1])
    parses = _parses(monkeypatch)
    assert gridstore.load(grid).total_rows == gridfile.load_grid(grid).total_rows
    assert len(parses) == 1


def test_a_bad_grid_fails_as_ever_and_leaves_no_entry(tmp_path: Path, grid_store: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("ticker,dte\nSPX,1\n")
    with pytest.raises(DataError, match="not a known grid format"):
        gridstore.load(bad)
    with pytest.raises(DataError, match="grid file not found"):
        gridstore.load(tmp_path / "missing.csv")
    assert list(grid_store.iterdir()) == []


def test_off_or_unsafe_store_parses_every_time(grid: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    parses = _parses(monkeypatch)
    monkeypatch.setenv("SPREADWATCH_CACHE_DIR", "")
    assert gridstore.store_directory() is None
    gridstore.load(grid)
    gridstore.load(grid)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # others may write here: entries there could be anyone's code
    monkeypatch.setenv("SPREADWATCH_CACHE_DIR", str(shared))
    assert gridstore.store_directory() is None
    gridstore.load(grid)
    assert len(parses) == 3 and list(shared.iterdir()) == []


def test_the_default_place_is_the_users_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SPREADWATCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gridstore.store_directory() == tmp_path / "xdg" / "spreadwatch"
    assert (tmp_path / "xdg" / "spreadwatch").stat().st_mode & 0o777 == 0o700
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert gridstore.store_directory() == tmp_path / "home" / ".cache" / "spreadwatch"


def test_scan_answers_the_same_from_the_store(grid_store: Path):
    command = [sys.executable, "-m", "spreadwatch.edges.cli_fast", "scan", "--at", "2019-01-02T14:35:00Z", "--all",
               "--json"]
    env = {**os.environ, "SPREADWATCH_CONFIG": ""}
    parsed = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=True).stdout
    assert len(list(grid_store.glob("*.pickle"))) == 1
    stored = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=True).stdout
    off = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True,
                         env={**env, "SPREADWATCH_CACHE_DIR": ""}).stdout
    assert '"opportunities"' in parsed and stored == parsed == off
