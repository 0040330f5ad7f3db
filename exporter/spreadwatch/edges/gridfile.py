"""Grid files: the canonical schema, the original system's three formats, validation and the reload cache.

Owns reading a grid CSV into one scan-ready frame in canonical units (ratios as fractions, money in dollars per
contract, entry times as ET `HH:MM`), naming the file, line and column of any bad cell, flagging impossible rows,
and re-reading a file only when it changes. Must not: filter for a market context (scanner.py does).

Formats (detected from the header; docs/grid.md has the full column mapping):
- canonical: the columns of `CANONICAL_COLUMNS` (the grid builder writes it);
- trading_ready: the original's `grid_trading_ready.csv` (`expected_win_pct`, `expected_roi_pct`...);
- analysis: the original's `grid_analysis_*.csv` (`win_rate_pct`, `roi_pct`, `successful`...);
- summary: the original's `grid_summary.csv` / `grid_dteN.csv` (`win_rate_pct`, `n_wins`, no ROI column).
The original formats carry no ticker, regime or trend: their rows apply to whichever ticker is scanned, in any
regime and trend (`all`), and no managed (exit-rule) figures: those are unknown (NaN), never invented.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spreadwatch.domain.scanner import ScanArrays
from spreadwatch.domain.values import MAX_NUMBER, MAX_SESSIONS
from spreadwatch.domain.vocabulary import BANDS, FLOW_MODES, REGIMES, SPREAD_TYPES, TRENDS
from spreadwatch.errors import DataError

CANONICAL_COLUMNS: tuple[str, ...] = (
    "ticker", "dte", "band", "spread_type", "flow_mode", "spread_width", "entry_time_et", "regime", "trend",
    "n_trades", "n_wins", "win_rate", "avg_credit", "avg_max_risk", "roi", "avg_pnl", "expected_return", "sharpe",
    "max_drawdown", "trade_score", "exit_n_wins", "exit_win_rate", "exit_avg_pnl", "exit_expected_return",
    "exit_sharpe", "exit_trade_score", "exit_loss_episodes", "n_effective", "exit_win_rate_low",
    "exit_win_rate_high", "commission_per_leg", "slippage_per_leg", "band_lower_move", "band_upper_move",
    "credit_source", "low_sample", "data_start", "data_end",
)
# The managed (exit-rule) figures: unknown (NaN) in a file without them (the original's formats).
MANAGED_COLUMNS: tuple[str, ...] = (
    "exit_n_wins", "exit_win_rate", "exit_avg_pnl", "exit_expected_return", "exit_sharpe", "exit_trade_score",
    "exit_loss_episodes", "n_effective", "exit_win_rate_low", "exit_win_rate_high",
)
# Columns a canonical file must have; the others may be absent or blank.
CANONICAL_REQUIRED: tuple[str, ...] = (
    "ticker", "dte", "band", "spread_type", "flow_mode", "spread_width", "entry_time_et", "regime", "trend",
    "n_trades", "win_rate", "avg_credit", "avg_max_risk", "roi", "sharpe",
)

# Each original format: source column -> (canonical column, scale). Scale 0.01 turns percent into a fraction.
ORIGINAL_FORMATS: dict[str, dict[str, tuple[str, float]]] = {
    "trading_ready": {
        "dte": ("dte", 1), "band": ("band", 1), "spread_type": ("spread_type", 1), "flow_mode": ("flow_mode", 1),
        "spread_width": ("spread_width", 1), "entry_time_et": ("entry_time_et", 1),
        "expected_win_pct": ("win_rate", 0.01), "expected_roi_pct": ("roi", 0.01), "sharpe": ("sharpe", 1),
        "expected_credit": ("avg_credit", 1), "max_risk_per_contract": ("avg_max_risk", 1),
        "n_trades": ("n_trades", 1),
    },
    "analysis": {
        "dte": ("dte", 1), "band": ("band", 1), "spread_type": ("spread_type", 1), "flow_mode": ("flow_mode", 1),
        "spread_width": ("spread_width", 1), "time_et": ("entry_time_et", 1),
        "win_rate_pct": ("win_rate", 0.01), "roi_pct": ("roi", 0.01), "sharpe": ("sharpe", 1),
        "avg_credit": ("avg_credit", 1), "avg_max_risk": ("avg_max_risk", 1), "n_trades": ("n_trades", 1),
    },
    "summary": {
        "dte": ("dte", 1), "band": ("band", 1), "spread_type": ("spread_type", 1), "flow_mode": ("flow_mode", 1),
        "spread_width": ("spread_width", 1), "time_et": ("entry_time_et", 1),
        "win_rate_pct": ("win_rate", 0.01), "sharpe": ("sharpe", 1), "avg_credit": ("avg_credit", 1),
        "avg_max_risk": ("avg_max_risk", 1), "n_trades": ("n_trades", 1),
    },
}
# Optional columns read when present (same name in every format).
OPTIONAL_NUMERIC: dict[str, str] = {
    name: name for name in ("avg_pnl", "expected_return", "trade_score", "n_wins", "max_drawdown", *MANAGED_COLUMNS,
                            "commission_per_leg", "slippage_per_leg", "band_lower_move", "band_upper_move")
}
NUMERIC = ("dte", "spread_width", "n_trades", "win_rate", "avg_credit", "avg_max_risk", "roi", "sharpe")
# Optional text columns of the canonical format (the builder writes them), read when present. A blank cell, or a
# file without the column (every original format), is unknown: None in the frame, null in JSON, never invented.
CREDIT_SOURCES: tuple[str, ...] = ("chains", "model")
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ENUMS: dict[str, tuple[str, ...]] = {
    "band": tuple(BANDS),
    "spread_type": SPREAD_TYPES,
    "flow_mode": FLOW_MODES,
    "regime": (*REGIMES, "all"),
    "trend": (*TRENDS, "all"),
}
CATEGORICAL: tuple[str, ...] = ("ticker", "band", "spread_type", "flow_mode", "regime", "trend", "entry_time_et")
# The grid bundled with the package: `spreadwatch grid build` on real S&P 500 and VIX history (docs/grid-builder.md).
BUNDLED_GRID = "grid_spx.csv"
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Grid:
    """A loaded grid: scan-ready rows (impossible ones removed unless kept) and what was skipped."""

    path: Path
    format: str
    frame: pd.DataFrame
    total_rows: int
    skipped_rows: int
    mtime: float
    skipped_by_reason: dict[str, int] = field(default_factory=dict)  # impossible reason -> rows skipped

    @property
    def rows(self) -> int:
        return len(self.frame)

    @cached_property
    def scan_arrays(self) -> ScanArrays:
        """The frame's columns as the scanner reads them, made once for this loaded grid and kept for every scan."""
        return ScanArrays(self.frame)


def detect_format(columns: list[str]) -> str:
    cols = set(columns)
    if {"win_rate", "roi", "entry_time_et", "regime"} <= cols:
        return "canonical"
    if "expected_win_pct" in cols:
        return "trading_ready"
    if "successful" in cols:
        return "analysis"
    if "win_rate_pct" in cols:
        return "summary"
    return "unknown"


class _NeedText(Exception):  # noqa: N818 (not an error: a signal to re-read the file as text)
    """A natively parsed numeric column holds a cell that fails a check: re-read the file as text, so the message
    quotes the cell as the file wrote it."""


def load_grid(path: str | os.PathLike[str], *, skip_impossible: bool = True) -> Grid:
    """Read and validate a grid file in any supported format.

    The numeric columns are parsed by the CSV reader itself (every cell a number, none blank, NaN or infinite:
    the fast way, in C), the text columns checked once per distinct value. A file any of whose numeric cells fails
    is read again as text, where the checks name the line, column and cell exactly as written."""
    path = Path(path)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise DataError(f"{path}: grid file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read grid: {exc}") from None
    try:
        return _grid(_read(path, typed=True), path, mtime, skip_impossible)
    except _NeedText:
        return _grid(_read(path, typed=False), path, mtime, skip_impossible)


def _read(path: Path, *, typed: bool) -> pd.DataFrame:
    """The file's cells: every column as text, or (`typed`) the format's numeric columns as the reader parses them.
    (Text columns read as plain Python strings, then factorized, load faster than as the `str` dtype or as
    categories by the reader; each becomes a category in `_to_canonical`.)"""
    options: dict[str, Any] = dict(keep_default_na=False, na_filter=False, skipinitialspace=True)
    try:
        dtype: Any = object
        if typed:
            header = pd.read_csv(path, nrows=0, skipinitialspace=True).columns
            numeric = _numeric_sources(detect_format([c.strip() for c in header]))
            dtype = {c: object for c in header if c.strip() not in numeric}
        raw = pd.read_csv(path, dtype=dtype, **options)
    except FileNotFoundError:
        raise DataError(f"{path}: grid file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read grid: {exc}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a CSV grid: {str(exc).splitlines()[0]}") from None
    raw.columns = [c.strip() for c in raw.columns]
    return raw


def _numeric_sources(fmt: str) -> set[str]:
    """The source columns of a format that hold numbers."""
    if fmt == "unknown":
        return set()
    mapping = {c: (c, 1.0) for c in CANONICAL_REQUIRED} if fmt == "canonical" else ORIGINAL_FORMATS[fmt]
    return {src for src, (dst, _) in mapping.items() if dst in NUMERIC} | set(OPTIONAL_NUMERIC)


def _grid(raw: pd.DataFrame, path: Path, mtime: float, skip_impossible: bool) -> Grid:
    fmt = detect_format(list(raw.columns))
    if fmt == "unknown":
        raise DataError(
            f"{path}: line 1: not a known grid format (expected the canonical columns, see docs/grid.md, "
            f"or one of the original's files)"
        )
    frame = _to_canonical(raw, fmt, path)
    if raw.empty:
        raise DataError(f"{path}: grid has no rows")
    reasons = impossible_reasons(frame)
    impossible = reasons != ""
    frame["impossible"] = impossible
    frame["impossible_reason"] = reasons
    by_reason = skipped_by_reason(reasons) if skip_impossible else {}
    if skip_impossible:
        frame = frame.loc[~impossible]
    frame = frame.reset_index(drop=True)
    for column in CATEGORICAL:  # a handful of values over many rows: the scan's filters compare codes
        frame[column] = frame[column].astype("category").cat.remove_unused_categories()
    return Grid(path=path, format=fmt, frame=frame, total_rows=len(raw), skipped_rows=sum(by_reason.values()),
                mtime=mtime, skipped_by_reason=by_reason)


# Rounding slack for the ROI bound: the original files give ROI in percent with two decimals (5e-5 as a fraction).
ROI_SLACK_ABS = 5e-5
ROI_SLACK_REL = 1e-3
RISK_SLACK_DOLLARS = 1.0  # max risk may differ from width x 100 - credit by rounding, never by more than $1
WIN_RATE_SLACK = 1e-3  # a win rate written in percent with one or two decimals, against n_wins / n_trades
IMPOSSIBLE_REASONS: tuple[str, ...] = (
    "credit <= 0", "credit >= width x 100", "max risk != width x 100 - credit", "win rate outside [0, 1]",
    "counts disagree", "ROI above credit / (width x 100 - credit)",
)


def impossible_reasons(frame: pd.DataFrame) -> pd.Series:
    """Why each row cannot be a trade anyone made ("" when it can), the first reason that applies, in
    IMPOSSIBLE_REASONS order. Per contract, a credit spread of width w (w x 100 dollars) collecting credit c:

    - 0 < c < w x 100, and its max risk is w x 100 - c (an iron condor's two wings share one credit and only one
      side can lose, so the wider wing's width is the row's width), within $1 of rounding;
    - every win rate (held, and managed where given) is in [0, 1];
    - counts agree: 0 <= n_wins <= n_trades and win_rate = n_wins / n_trades where both are given (the same for
      the managed exit_n_wins / exit_win_rate);
    - ROI = credit / max risk can never exceed c / (w x 100 - c).
    """
    credit = frame["avg_credit"].to_numpy(dtype=float)
    width = frame["spread_width"].to_numpy(dtype=float) * 100
    risk = frame["avg_max_risk"].to_numpy(dtype=float)
    roi = frame["roi"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        roi_max = credit / (width - credit)
    conditions = [
        credit <= 0,
        credit >= width,
        np.abs(risk - (width - credit)) > RISK_SLACK_DOLLARS,
        _outside_unit(frame, "win_rate") | _outside_unit(frame, "exit_win_rate"),
        _counts_disagree(frame, "n_wins", "win_rate") | _counts_disagree(frame, "exit_n_wins", "exit_win_rate"),
        roi > roi_max * (1 + ROI_SLACK_REL) + ROI_SLACK_ABS,
    ]
    first = np.select(conditions, range(1, len(IMPOSSIBLE_REASONS) + 1), default=0)
    return pd.Series(np.array(["", *IMPOSSIBLE_REASONS], dtype=object)[first], index=frame.index)


def _outside_unit(frame: pd.DataFrame, column: str) -> np.ndarray:
    values = frame[column].to_numpy(dtype=float)
    return np.isfinite(values) & ((values < 0) | (values > 1))


def _counts_disagree(frame: pd.DataFrame, wins_column: str, rate_column: str) -> np.ndarray:
    """n_wins outside [0, n_trades], or a win rate that is not n_wins / n_trades (where both are given)."""
    wins = frame[wins_column].to_numpy(dtype=float)
    trades = frame["n_trades"].to_numpy(dtype=float)
    rate = frame[rate_column].to_numpy(dtype=float)
    given = np.isfinite(wins)
    out_of_range = given & ((wins < 0) | (wins > trades))
    with np.errstate(divide="ignore", invalid="ignore"):
        mismatch = given & np.isfinite(rate) & (trades > 0) & (np.abs(rate - wins / trades) > WIN_RATE_SLACK)
    return out_of_range | mismatch


def skipped_by_reason(reasons: pd.Series) -> dict[str, int]:
    """How many rows each impossible reason removed (reasons that removed none are left out)."""
    counts = reasons[reasons != ""].value_counts()
    return {reason: int(counts[reason]) for reason in IMPOSSIBLE_REASONS if reason in counts}


def _to_canonical(raw: pd.DataFrame, fmt: str, path: Path) -> pd.DataFrame:
    mapping = {c: (c, 1.0) for c in CANONICAL_REQUIRED} if fmt == "canonical" else ORIGINAL_FORMATS[fmt]
    missing = [src for src in mapping if src not in raw.columns]
    if missing:
        raise DataError(f"{path}: line 1: missing column(s) {', '.join(missing)} for the {fmt} format")

    # The columns are gathered first and made one frame once (inserting them one by one costs more than the data).
    columns: dict[str, Any] = {}
    for src, (dst, scale) in mapping.items():
        if dst in NUMERIC:
            values = _numeric(raw, src, path, required=True)
            # Percent to fraction, rounded to 10 places so 95.5 % reads 0.955 in JSON, not 0.9550000000000001.
            columns[dst] = (values / 100).round(10) if scale == 0.01 else values * scale
        else:
            columns[dst] = _stripped_category(raw[src])
    for src, dst in OPTIONAL_NUMERIC.items():
        if src in raw.columns and dst not in columns:
            columns[dst] = _numeric(raw, src, path, required=False)
        elif dst not in columns:
            columns[dst] = np.nan
    _read_provenance(raw, columns, path)
    if fmt != "canonical":
        for column in ("ticker", "regime", "trend"):
            columns[column] = pd.Categorical.from_codes(np.zeros(len(raw), dtype=np.int8),
                                                        categories=pd.Index(["all"], dtype="str"))
    if fmt == "summary":
        with np.errstate(divide="ignore", invalid="ignore"):
            columns["roi"] = columns["avg_credit"] / columns["avg_max_risk"]
    out = pd.DataFrame(columns, index=raw.index)
    for column, allowed in ENUMS.items():
        _check_enum(out, column, allowed, path, raw_name=_source_name(mapping, column))
    _check_times(out, path, _source_name(mapping, "entry_time_et"))
    _check_ranges(out, path, mapping, raw)
    out["dte"] = out["dte"].astype(int)
    out["n_trades"] = out["n_trades"].astype(int)
    out["line"] = raw.index.to_numpy() + 2
    times = out["entry_time_et"].cat
    minutes = np.array([int(s[:2]) * 60 + int(s[3:]) for s in times.categories], dtype=np.int64)
    out["entry_minutes"] = minutes[times.codes.to_numpy()] if len(minutes) else np.zeros(len(out), dtype=np.int64)
    _fill_derived(out)
    return out


def _fill_derived(out: pd.DataFrame) -> None:
    """Figures a file may leave out that follow from its others (NaN stays NaN where their inputs are unknown)."""
    score = original_trade_score(out["roi"], out["sharpe"], out["win_rate"], out["avg_max_risk"])
    out["trade_score"] = out["trade_score"].fillna(score)
    exit_score = original_trade_score(out["roi"], out["exit_sharpe"], out["exit_win_rate"], out["avg_max_risk"])
    out["exit_trade_score"] = out["exit_trade_score"].fillna(exit_score)
    out["expected_return"] = out["expected_return"].fillna(out["avg_pnl"] / out["avg_max_risk"])
    out["exit_expected_return"] = out["exit_expected_return"].fillna(out["exit_avg_pnl"] / out["avg_max_risk"])


def original_trade_score(roi: Any, sharpe: Any, win_rate: Any, max_risk: Any) -> Any:
    """The original's trade score: 0.25*ROI% + 8*Sharpe + 0.6*win% + 20000/max_risk (percent inputs)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.25 * roi * 100 + 8 * sharpe + 0.6 * win_rate * 100 + 20000 / max_risk


def _source_name(mapping: dict[str, tuple[str, float]], canonical: str) -> str:
    for src, (dst, _) in mapping.items():
        if dst == canonical:
            return src
    return canonical


def _codes_and_texts(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's code and the distinct cells, as written (a text column, or one read as categories)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(), [str(c) for c in column.cat.categories]
    codes, uniques = pd.factorize(column.to_numpy(dtype=object), sort=False)  # faster than on the str dtype
    return codes, [str(u) for u in uniques]


def _stripped_category(column: pd.Series) -> pd.Series:
    """A text column, each cell stripped, as a category (each distinct cell stripped once: a grid repeats a handful
    of values over many rows)."""
    codes, texts = _codes_and_texts(column)
    stripped = np.array([t.strip() for t in texts], dtype=object)
    categories, inverse = np.unique(stripped, return_inverse=True) if len(stripped) else (stripped, codes)
    return pd.Series(pd.Categorical.from_codes(np.asarray(inverse, dtype=np.int64)[codes],
                                               categories=pd.Index(categories, dtype="str")), index=column.index)


def _numeric(raw: pd.DataFrame, column: str, path: Path, *, required: bool) -> pd.Series:
    if raw[column].dtype.kind in "iuf":  # every cell parsed as a number by the reader
        numbers = raw[column].to_numpy(dtype=float)
        if np.isfinite(numbers).all() and not (np.abs(numbers) > MAX_NUMBER).any():
            return pd.Series(numbers, index=raw.index)
        raise _NeedText(column)
    if raw[column].dtype.kind == "b":  # true/false cells: text, refused below with the cell as written
        raise _NeedText(column)
    text = raw[column].str.strip()
    values = pd.to_numeric(text, errors="coerce").astype(float)
    blank = text == ""
    bad = values.isna() & ~blank
    if required:
        bad |= blank
    bad |= np.isinf(values)
    if bad.any():
        index = int(np.flatnonzero(bad.to_numpy())[0])
        cell = text.iloc[index]
        what = "blank value" if cell == "" else f"bad value {cell!r}"
        raise DataError(f"{path}: line {index + 2}: column {column}: {what} (expected a number)")
    huge = np.abs(values) > MAX_NUMBER  # the same ceiling as every other way in (domain/values.py)
    if huge.any():
        index = int(np.flatnonzero(huge.to_numpy())[0])
        raise DataError(f"{path}: line {index + 2}: column {column}: bad value {text.iloc[index]!r} "
                        f"(beyond the largest accepted, {MAX_NUMBER:g})")
    return values


def _check_enum(out: pd.DataFrame, column: str, allowed: tuple[str, ...], path: Path, raw_name: str) -> None:
    bad = ~out[column].isin(allowed)
    if bad.any():
        index = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: line {index + 2}: column {raw_name}: bad value {out[column].iloc[index]!r} "
            f"(allowed: {', '.join(allowed)})"
        )


def _check_times(out: pd.DataFrame, path: Path, raw_name: str) -> None:
    bad = ~out["entry_time_et"].str.match(_HHMM)
    if bad.any():
        index = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: line {index + 2}: column {raw_name}: bad time {out['entry_time_et'].iloc[index]!r} (expected HH:MM)"
        )


def _check_ranges(out: pd.DataFrame, path: Path, mapping: dict[str, tuple[str, float]], raw: pd.DataFrame) -> None:
    """Range checks; the message quotes the cell as the file wrote it (not a numpy repr, not a rescaled value)."""
    checks = {
        "dte": ((out["dte"] < 0) | (out["dte"] != out["dte"].round()) | (out["dte"] > MAX_SESSIONS),
                f"expected a whole number from 0 to {MAX_SESSIONS:,}"),
        "spread_width": (out["spread_width"] <= 0, "expected a number > 0"),
        "n_trades": ((out["n_trades"] < 0) | (out["n_trades"] != out["n_trades"].round()),
                     "expected a whole number >= 0"),
        "avg_max_risk": (out["avg_max_risk"] <= 0, "expected a number > 0"),
    }
    for column, (bad, expected) in checks.items():
        if bad.any():
            index = int(np.flatnonzero(bad.to_numpy())[0])
            source = _source_name(mapping, column)
            if raw[source].dtype.kind in "iufb":  # parsed: the message quotes the cell as written
                raise _NeedText(source)
            raise DataError(
                f"{path}: line {index + 2}: column {source}: "
                f"bad value {str(raw[source].iloc[index]).strip()!r} (out of range: {expected})"
            )


def _read_provenance(raw: pd.DataFrame, out: dict[str, Any], path: Path) -> None:
    """`credit_source` (chains|model), `low_sample` (true|false), `data_start`/`data_end` (YYYY-MM-DD): where a
    row's numbers come from. Absent column or blank cell: None (unknown). A bad non-blank value fails like any
    other cell. (Each distinct cell is checked once: these columns repeat a handful of values.)"""
    for column, parse, expected in (
        ("credit_source", lambda v: v if v in CREDIT_SOURCES else _BAD,
         f"allowed: {', '.join(CREDIT_SOURCES)}, or blank"),
        ("low_sample", lambda v: _BOOL_TEXT.get(v.lower(), _BAD), "expected true or false, or blank"),
        ("data_start", _iso_date_or_bad, "expected a date YYYY-MM-DD, or blank"),
        ("data_end", _iso_date_or_bad, "expected a date YYYY-MM-DD, or blank"),
    ):
        if column not in raw.columns:
            out[column] = pd.Series([None] * len(raw), index=raw.index, dtype=object)
            continue
        codes, written = _codes_and_texts(raw[column])
        texts = [v.strip() for v in written]
        parsed = np.empty(len(texts), dtype=object)
        parsed[:] = [None if v == "" else parse(v) for v in texts]
        bad = np.array([v is _BAD for v in parsed], dtype=bool)[codes]
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: line {index + 2}: column {column}: bad value {texts[codes[index]]!r} ({expected})")
        out[column] = pd.Series(parsed[codes], index=raw.index, dtype=object)


_BAD = object()  # a cell that does not parse


def _iso_date_or_bad(text: str) -> object:
    if not _ISO_DATE.match(text):
        return _BAD
    try:
        date.fromisoformat(text)
    except ValueError:
        return _BAD
    return text


class GridCache:
    """Loads a grid once and re-reads it only when the file's modification time or size changes.

    A reload that fails raises DataError; callers keep serving the last good grid and count the error.
    """

    def __init__(self, path: str | os.PathLike[str], *, skip_impossible: bool = True) -> None:
        self.path = Path(path)
        self.skip_impossible = skip_impossible
        self._grid: Grid | None = None
        self._key: tuple[int, int] | None = None
        self.loads = 0

    def get(self) -> Grid:
        try:
            stat = self.path.stat()
        except OSError:
            raise DataError(f"{self.path}: grid file not found") from None
        key = (stat.st_mtime_ns, stat.st_size)
        if self._grid is None or key != self._key:
            self._grid = load_grid(self.path, skip_impossible=self.skip_impossible)
            self._key = key
            self.loads += 1
        return self._grid

    @property
    def last(self) -> Grid | None:
        return self._grid


# ------------------------------------------------------------------------------------------------------------
# `spreadwatch grid show`: the best rows, with where their credits come from (model, chains or not recorded)

SHOW_COLUMNS: tuple[str, ...] = (
    "ticker", "dte", "band", "spread_type", "flow_mode", "spread_width", "entry_time_et", "regime", "trend",
    "n_trades", "win_rate", "exit_win_rate", "exit_win_rate_low", "exit_win_rate_high", "n_effective", "roi",
    "expected_return", "exit_expected_return", "avg_pnl", "exit_avg_pnl", "avg_credit", "avg_max_risk", "sharpe",
    "trade_score", "exit_trade_score", "credit_source", "low_sample", "data_start", "data_end",
)
_INT_COLUMNS = frozenset({"dte", "n_trades", "n_wins", "exit_n_wins", "exit_loss_episodes"})


def _json_value(column: str, value: Any) -> Any:
    """One cell as a plain JSON value: counts as int, numbers as float, NaN/None as null."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        if not np.isfinite(number):
            return None
        return int(number) if column in _INT_COLUMNS else number
    return str(value)


def credit_source_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Rows whose credits are modelled, from option chains, and unknown (not recorded, e.g. the original's files)."""
    sources = frame["credit_source"] if "credit_source" in frame else pd.Series([None] * len(frame), dtype=object)
    model = int((sources == "model").sum())
    chains = int((sources == "chains").sum())
    return {"model": model, "chains": chains, "unknown": len(frame) - model - chains}


def low_sample_count(frame: pd.DataFrame) -> int | None:
    """Rows marked low_sample; None when no row records the flag (the original's files have no such column)."""
    flags = frame["low_sample"] if "low_sample" in frame else pd.Series([None] * len(frame), dtype=object)
    known = flags.map(lambda v: v is not None)
    if not known.any():
        return None
    return int(flags.map(lambda v: v is True).sum())


def show_score(grid: Grid) -> str:
    """The score `grid show` ranks by: the managed trade score when the grid has managed figures, else the held."""
    managed = grid.frame["exit_trade_score"] if "exit_trade_score" in grid.frame else pd.Series(dtype=float)
    return "exit_trade_score" if managed.notna().any() else "trade_score"


def show_rows(grid: Grid, *, top: int, min_trades: int) -> pd.DataFrame:
    """The rows `grid show` lists: at least `min_trades` trades, best (managed, else held) trade score first."""
    frame = grid.frame[grid.frame["n_trades"] >= min_trades]
    return frame.sort_values(show_score(grid), ascending=False, kind="stable").head(top)


def show_json(grid: Grid, *, top: int, min_trades: int) -> dict[str, Any]:
    """`grid show --json`: counts are ints; `credit_source`/`low_sample` null where the file does not record them."""
    frame = show_rows(grid, top=top, min_trades=min_trades)
    return {
        "file": str(grid.path), "format": grid.format, "rows": grid.total_rows, "skipped_rows": grid.skipped_rows,
        "skipped_by_reason": dict(grid.skipped_by_reason),
        "min_trades": min_trades, "credit_sources": credit_source_counts(grid.frame),
        "low_sample_rows": low_sample_count(grid.frame),
        "top": [{c: _json_value(c, row.get(c)) for c in SHOW_COLUMNS} for _, row in frame.iterrows()],
    }


def _provenance_lines(grid: Grid) -> list[str]:
    frame = grid.frame
    counts = credit_source_counts(frame)
    loaded = len(frame)
    if counts["unknown"] == loaded:
        why = (f"the original system's {grid.format} format has no credit_source column"
               if grid.format != "canonical" else "this file has no credit_source values")
        credit = f"credit source: not recorded ({why}); shown as '?' under credits"
    else:
        credit = (f"credit source of the {loaded} rows loaded: {counts['model']} modelled (Black-Scholes on the "
                  f"vol index, not market quotes), {counts['chains']} from option chains")
        if counts["unknown"]:
            credit += f", {counts['unknown']} not recorded ('?')"
    low = low_sample_count(frame)
    if low is None:
        sample = "low sample: not recorded (no low_sample values); shown as '?' under sample"
    else:
        sample = (f"low sample: {low} of the {loaded} rows loaded are marked low_sample (too few trades to trust), "
                  "shown as 'low' under sample")
    lines = [credit, sample]
    starts = [d for d in frame["data_start"] if d] if "data_start" in frame else []
    ends = [d for d in frame["data_end"] if d] if "data_end" in frame else []
    if starts and ends:
        lines.append(f"entry sessions backtested: {min(starts)} .. {max(ends)} (data_start .. data_end)")
    return lines


def _pct(value: float, width: int) -> str:
    return f"{value:>{width}.1%}" if np.isfinite(value) else f"{'?':>{width}}"


def skipped_text(skipped_rows: int, by_reason: dict[str, int]) -> str:
    """`12 impossible rows skipped (credit >= width x 100: 9, counts disagree: 3)`"""
    detail = ", ".join(f"{reason}: {count}" for reason, count in by_reason.items())
    return f"{skipped_rows} impossible rows skipped" + (f" ({detail})" if detail else "")


def show_lines(grid: Grid, *, top: int, min_trades: int) -> list[str]:
    """`grid show` as text: a header (file, impossible rows by reason, credit source and low-sample counts,
    window), then one line per row: held and managed win rate, the managed rate's 95 % interval, ROI (credit /
    risk) and the managed expected return on risk, with its credit source and `low` on low-sample rows."""
    frame = show_rows(grid, top=top, min_trades=min_trades)
    score = show_score(grid)
    lines = [f"{grid.path} ({grid.format}): {grid.total_rows} rows, "
             f"{skipped_text(grid.skipped_rows, grid.skipped_by_reason)}; "
             f"top {len(frame)} by {'managed' if show_score(grid) == 'exit_trade_score' else 'held'} trade score "
             f"with at least {min_trades} trades",
             *_provenance_lines(grid),
             "win: held to expiry; managed: with the exit rules; 95% interval of the managed win rate; "
             "exp: managed average P&L / average max risk",
             f"{'dte':>3} {'band':<5} {'spread':<12} {'flow':<12} {'width':>5} {'ET':<5} {'regime':<8} "
             f"{'trend':<8} {'n':>5} {'win':>6} {'managed':>7} {'interval':>13} {'roi':>6} {'exp':>6} "
             f"{'credit':>8} {'risk':>8} {'score':>7} {'credits':<7} sample"]
    for _, r in frame.iterrows():
        source = r.get("credit_source") or "?"
        flag = r.get("low_sample")
        sample = "?" if flag is None else ("low" if flag is True else "")
        low, high = float(r.exit_win_rate_low), float(r.exit_win_rate_high)
        interval = f"{low:.1%}-{high:.1%}" if np.isfinite(low) and np.isfinite(high) else "?"
        lines.append(f"{int(r.dte):>3} {r.band:<5} {r.spread_type:<12} {r.flow_mode:<12} {r.spread_width:>5g} "
                     f"{r.entry_time_et:<5} {r.regime:<8} {r.trend:<8} {int(r.n_trades):>5} "
                     f"{_pct(r.win_rate, 6)} {_pct(r.exit_win_rate, 7)} {interval:>13} {_pct(r.roi, 6)} "
                     f"{_pct(r.exit_expected_return, 6)} {r.avg_credit:>8.2f} {r.avg_max_risk:>8.2f} "
                     f"{r[score]:>7.1f} {source:<7} {sample}".rstrip())
    return lines


def grid_path(config_grid: str, override: str | None = None) -> Path:
    """--grid, then config paths.grid, then the bundled grid."""
    from spreadwatch.config import bundled_path

    if override:
        return Path(override)
    if config_grid:
        return Path(config_grid)
    return bundled_path(BUNDLED_GRID)
