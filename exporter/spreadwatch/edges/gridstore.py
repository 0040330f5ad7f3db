"""Parsed grids kept on disk between commands, so that `status` and `scan` do not parse and validate the same grid
file at every start (for the bundled grid that is most of what these commands add to importing pandas).

An entry holds what `load_grid` made of one grid file (the scan-ready frame and what it skipped), stored with the
identity of its inputs: the file's real path, device, inode, size, modification and change times (in ns), the
skip-impossible setting, the versions of pandas and numpy, and the same identity of the modules that parse and
check (edges/gridfile.py, domain/vocabulary.py, domain/values.py). An edited grid, a changed setting or another
spreadwatch is parsed afresh. One entry per grid file and setting, replaced whole (written to a temporary file,
then renamed over the old one), so a reader sees the old entry or the new one, never half of one.

The store is derived data: an entry that cannot be read, or that belongs to other inputs, is a miss, never an
error: the grid is parsed again (a bad grid fails with its own message, as always, and leaves no entry) and the
entry rewritten. Losing the whole store costs one parse.

Where: SPREADWATCH_CACHE_DIR, else $XDG_CACHE_HOME/spreadwatch, else ~/.cache/spreadwatch; SPREADWATCH_CACHE_DIR
set to an empty value turns the store off. Entries are pickles, which run code as they load: a directory that is
not this user's, or that others may write to, is not used. Grid files over MAX_FILE_BYTES are not kept (a
million-row grid would take hundreds of MB of disk for a saving that matters only at small sizes).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import stat as stat_module
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spreadwatch.domain import values, vocabulary
from spreadwatch.edges import gridfile
from spreadwatch.edges.gridfile import Grid, load_grid

log = logging.getLogger(__name__)

ENTRY_FORMAT = 1  # bumped when an entry's layout changes
MAX_FILE_BYTES = 64 * 1024 * 1024
_PARSERS = (gridfile.__file__, vocabulary.__file__, values.__file__)


def load(path: str | os.PathLike[str], *, skip_impossible: bool = True) -> Grid:
    """The grid at `path`, as `load_grid` reads it: from the store when it holds this very file's entry."""
    directory = store_directory()
    try:
        before = os.stat(path)
    except OSError:
        before = None  # load_grid names the problem
    if directory is None or before is None or before.st_size > MAX_FILE_BYTES:
        return load_grid(path, skip_impossible=skip_impossible)
    real = os.path.realpath(path)
    key = _key(real, before, skip_impossible)
    entry = directory / f"{hashlib.sha256(f'{real}|{skip_impossible}'.encode()).hexdigest()[:32]}.pickle"
    grid = _read(entry, key, Path(path), before.st_mtime)
    if grid is not None:
        return grid
    grid = load_grid(path, skip_impossible=skip_impossible)
    try:
        after = os.stat(path)
    except OSError:
        return grid
    if _key(real, after, skip_impossible) == key:  # the file did not change while it was read
        _write(entry, key, grid)
    return grid


def store_directory() -> Path | None:
    """Where entries live, made if need be (owner only); None when the store is off or the place is unsafe."""
    setting = os.environ.get("SPREADWATCH_CACHE_DIR")
    if setting is not None:
        if not setting:
            return None
        directory = Path(setting)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        directory = Path(base) / "spreadwatch"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = directory.stat()
    except OSError as exc:
        log.debug("grid store %s unavailable: %s", directory, exc)
        return None
    if not stat_module.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        log.debug("grid store %s not used: not this user's own directory", directory)
        return None
    return directory


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _key(real: str, st: os.stat_result, skip_impossible: bool) -> tuple[Any, ...]:
    parsers = []
    for module in _PARSERS:
        try:
            parsers.append(_identity(os.stat(module)))
        except OSError:
            parsers.append(())
    return (ENTRY_FORMAT, real, _identity(st), skip_impossible, pd.__version__, np.__version__, tuple(parsers))


def _read(entry: Path, key: tuple[Any, ...], path: Path, mtime: float) -> Grid | None:
    try:
        with open(entry, "rb") as f:
            stored = pickle.load(f)
        if not isinstance(stored, dict) or stored.get("key") != key or not isinstance(stored["frame"], pd.DataFrame):
            return None
        return Grid(path=path, format=stored["format"], frame=stored["frame"], total_rows=stored["total_rows"],
                    skipped_rows=stored["skipped_rows"], mtime=mtime, skipped_by_reason=stored["skipped_by_reason"])
    except FileNotFoundError:
        return None
    except Exception as exc:  # a truncated or foreign entry is a miss: the grid is parsed again
        log.debug("grid store entry %s not used: %s: %s", entry, type(exc).__name__, exc)
        return None


def _write(entry: Path, key: tuple[Any, ...], grid: Grid) -> None:
    stored = {"key": key, "format": grid.format, "frame": grid.frame, "total_rows": grid.total_rows,
              "skipped_rows": grid.skipped_rows, "skipped_by_reason": dict(grid.skipped_by_reason)}
    temporary = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as f:
            pickle.dump(stored, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, entry)
    except OSError as exc:  # a full or read-only disk: the next command parses again
        log.debug("grid store entry %s not written: %s", entry, exc)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
