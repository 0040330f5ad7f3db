"""The opportunity scan: grid configs that suit the market now, ranked, with entry windows and suggested strikes.

Pure: takes a loaded grid and plain context values, returns values; no I/O, no clock. Filters run vectorized, in
this order, and the scan counts the rows each one removed (`ScanResult.removed`, printed by `scan` when nothing
passes): ticker, off-chain width (not a multiple of the ticker's strike increment), regime (the recommendation
table), trend, one row per setup (of the rows left for a setup identity the most specific one: regime- and
trend-specific rows before `all`), flow, managed figures unknown (when the basis is managed), each quality
threshold, then one width per setup (the best by the ranking, unless --all). Ranking: by trade score of the basis
(managed by default: `exit_trade_score`), in-window setups first, and the top-N cut from that order.

Unknown context narrows, never guesses: an unknown regime gives no opportunities (the recommendation table needs
one), an unknown trend admits only grid rows valid in every trend and keeps the regime's spread types, an unknown
flow admits only `neutral` configs, an unknown price gives no strikes, a ticker without a configured strike
increment gives no strikes.
"""

from __future__ import annotations

import hashlib
import math
from collections import namedtuple
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from spreadwatch.domain.bands import band_edges, intraday_moves, signed_moves
from spreadwatch.domain.display import zone_abbreviation
from spreadwatch.domain.strikes import Strikes, place_strikes
from spreadwatch.domain.vocabulary import ET, flow_qualifies_array

if TYPE_CHECKING:
    from spreadwatch.config import Config
    from spreadwatch.domain.events import EventCalendar
    from spreadwatch.domain.positions import Summary
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.gridfile import Grid

IDENTITY = ("ticker", "dte", "band", "spread_type", "flow_mode", "spread_width", "entry_time_et")
# The counts `ScanResult.removed` reports, in the order the filters run.
FILTERS: tuple[str, ...] = (
    "ticker", "off_chain_width", "regime", "trend", "less_specific", "flow", "no_managed_figures",
    "min_win_rate", "min_roi", "min_sharpe", "min_composite_score", "min_trades", "other_width",
)


@dataclass(frozen=True)
class BookState:
    """What the risk check needs from the position book."""

    open_count: int
    open_risk: float

    @classmethod
    def of(cls, summary: Summary) -> BookState:
        """From the book's sums (positions.summarize, the one implementation)."""
        return cls(summary.open_count, summary.total_risk)


def _num(value: Any) -> float | None:
    """A grid figure as a JSON number, None where the grid does not know it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Opportunity:
    id: str
    rank: int
    ticker: str
    dte: int
    band: str
    spread_type: str
    flow_mode: str
    spread_width: float
    entry_time_et: str
    entry_time_local: str
    win_rate: float  # held to expiry
    roi: float  # credit / max risk: the most a trade can return
    sharpe: float
    trade_score: float  # of the basis the scan ranked on
    credit: float
    max_risk: float
    n_trades: int
    in_window: bool
    blocked_by_risk: bool
    strikes: Strikes | None
    expiry: str | None
    credit_source: str | None = None  # model|chains from a built grid; None when the grid does not record it
    regime: str = "all"  # the grid row's regime and trend (the most specific row for the context)
    trend: str = "all"
    basis: str = "held"  # managed|held: the figures the scan filtered and ranked on
    avg_pnl: float | None = None  # held, dollars per contract
    expected_return: float | None = None  # held: avg P&L / avg max risk
    exit_win_rate: float | None = None  # managed (the exit rules); None when the grid does not know it
    exit_avg_pnl: float | None = None
    exit_expected_return: float | None = None
    exit_sharpe: float | None = None
    exit_win_rate_low: float | None = None  # 95 % interval of the managed win rate
    exit_win_rate_high: float | None = None
    n_effective: float | None = None
    low_sample: bool | None = None
    # Why a new entry is held back (domain/events.py: "FOMC 2026-12-09"); None when it is not.
    held_back: str | None = None
    entry_zone: str = ""  # the display zone's abbreviation for entry_time_local (PT); JSON keeps HH:MM

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "rank": self.rank, "ticker": self.ticker, "dte": self.dte, "band": self.band,
            "spread_type": self.spread_type, "flow_mode": self.flow_mode, "spread_width": self.spread_width,
            "entry_time_et": self.entry_time_et, "entry_time_local": self.entry_time_local,
            "regime": self.regime, "trend": self.trend, "basis": self.basis,
            "win_rate": self.win_rate, "exit_win_rate": self.exit_win_rate,
            "exit_win_rate_low": self.exit_win_rate_low, "exit_win_rate_high": self.exit_win_rate_high,
            "avg_pnl": self.avg_pnl, "exit_avg_pnl": self.exit_avg_pnl,
            "expected_return": self.expected_return, "exit_expected_return": self.exit_expected_return,
            "roi": self.roi, "sharpe": self.sharpe, "exit_sharpe": self.exit_sharpe,
            "trade_score": self.trade_score, "credit": self.credit, "max_risk": self.max_risk,
            "n_trades": self.n_trades, "n_effective": self.n_effective, "low_sample": self.low_sample,
            "in_window": self.in_window, "blocked_by_risk": self.blocked_by_risk,
            "strikes": self.strikes.as_dict() if self.strikes else None, "expiry": self.expiry,
            "credit_source": self.credit_source, "held_back": self.held_back,
        }

    @property
    def entry_local(self) -> str:
        """The entry time as people read it: `06:30 PT` (the display zone)."""
        return f"{self.entry_time_local} {self.entry_zone}" if self.entry_zone else self.entry_time_local

    def alert_line(self) -> str:
        """`#1: 1DTE P97 IRON_CONDOR @ 06:30 PT | Win:93.3% held 77.4% managed | ROI:8.8% | Credit:$202 Risk:$2298
        | Short 2440P/2570C` (the original's line, with the managed win rate beside the held one)."""
        managed = f" {self.exit_win_rate * 100:.1f}% managed" if self.exit_win_rate is not None else ""
        line = (
            f"#{self.rank}: {self.dte}DTE {self.band} {self.spread_type.upper()} @ {self.entry_local} | "
            f"Win:{self.win_rate * 100:.1f}% held{managed} | ROI:{self.roi * 100:.1f}% | "
            f"Credit:${self.credit:.0f} Risk:${self.max_risk:.0f}"
        )
        if self.strikes is not None:
            line += f" | Short {self.strikes.label()}"
        return line

    def notice_line(self) -> str:
        """One setup of an entry notification (its rank is written before it): `1DTE P98 IRON_CONDOR 25 wide
        @ 06:30 PT | Win:78.1% managed 93.0% held | Credit:$192 Risk:$2308 | Strikes: SP 2430 LP 2405 SC 2575
        LC 2600`. Money per contract; strikes are suggestions on the price now (absent when it is unknown)."""
        managed = f"{self.exit_win_rate * 100:.1f}% managed " if self.exit_win_rate is not None else ""
        line = (f"{self.dte}DTE {self.band} {self.spread_type.upper()} {self.spread_width:g} wide @ {self.entry_local}"
                f" | Win:{managed}{self.win_rate * 100:.1f}% held | Credit:${self.credit:.0f} Risk:${self.max_risk:.0f}")
        if self.strikes is not None:
            legs = self.strikes.as_dict()
            names = {"short_put": "SP", "long_put": "LP", "short_call": "SC", "long_call": "LC"}
            line += " | Strikes: " + " ".join(f"{names[leg]} {legs[leg]:g}" for leg in names if leg in legs)
        return line


@dataclass(frozen=True)
class ScanResult:
    ticker: str
    regime: str | None
    skipped_rows: int
    matching_count: int
    opportunities: tuple[Opportunity, ...]
    skipped_by_reason: dict[str, int] = field(default_factory=dict)  # impossible grid rows by reason
    removed: dict[str, int] = field(default_factory=dict)  # rows each filter removed (FILTERS order)
    out_of_window: int = 0  # passing setups outside their entry window now
    refused_widths: tuple[float, ...] = ()  # widths in the grid that are not on the ticker's strike grid
    strike_increment: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "regime": self.regime,
            "skipped_rows": self.skipped_rows,
            "skipped_by_reason": dict(self.skipped_by_reason),
            "matching_count": self.matching_count,
            "removed_by_filter": {**self.removed, "window": self.out_of_window,
                                  "impossible": self.skipped_rows},
            "opportunities": [o.to_json() for o in self.opportunities],
        }


def opportunity_id(ticker: str, dte: int, band: str, spread_type: str, flow_mode: str, width: float,
                   entry_time_et: str) -> str:
    """Stable identity: the same setup gets the same id in every scan (Alertmanager de-duplicates on it)."""
    key = f"{ticker}|{dte}|{band}|{spread_type}|{flow_mode}|{width:g}|{entry_time_et}"
    return hashlib.sha1(key.encode()).hexdigest()[:10]


# ------------------------------------------------------------------------------------------------------------
# The grid as arrays


class ScanArrays:
    """A grid frame's columns as numpy arrays, each made once (on first use) and kept for every later scan of the
    same loaded grid: a text column as small integer codes with its distinct values, a number column as floats.
    The filters then test each distinct value once and look the answer up by code, and follow the rows still in
    as positions, so a scan costs a few array operations over the grid and the rest over the rows that pass.
    Reads the frame only; the frame must not change after it is handed over (a loaded grid never does)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.size = len(frame)
        self._codes: dict[str, tuple[np.ndarray, list[Any]]] = {}
        self._numbers: dict[str, np.ndarray] = {}
        self._record: Any = None

    def codes(self, column: str) -> tuple[np.ndarray, list[Any]]:
        """Each row's code and the distinct values the codes stand for (a missing value is one of them)."""
        if column not in self._codes:
            series = self.frame[column]
            if isinstance(series.dtype, pd.CategoricalDtype):
                codes = series.cat.codes.to_numpy().astype(np.intp)
                values: list[Any] = list(series.cat.categories)
                if (codes < 0).any():
                    codes = np.where(codes < 0, len(values), codes)
                    values.append(None)
            else:
                codes, uniques = pd.factorize(series.to_numpy(), use_na_sentinel=False)
                codes, values = codes.astype(np.intp), list(uniques)
            self._codes[column] = (codes, values)
        return self._codes[column]

    def records(self, rows: np.ndarray) -> list[Any]:
        """The rows at `rows` (positions) as records with one attribute per column, the values Python's own (a text
        column's string, a float, an int, a bool, None), as `DataFrame.itertuples` gives them."""
        names = [str(c) for c in self.frame.columns]
        if self._record is None:
            self._record = namedtuple("GridRow", names, rename=True)  # type: ignore[misc]
        cells = []
        for name in names:
            if isinstance(self.frame[name].dtype, pd.CategoricalDtype):
                codes, values = self.codes(name)
                cells.append([values[c] for c in codes[rows]])
            else:
                cells.append(self.frame[name].to_numpy()[rows].tolist())
        return [self._record(*cells_of_row) for cells_of_row in zip(*cells, strict=True)]

    def numbers(self, column: str) -> np.ndarray:
        if column not in self._numbers:
            self._numbers[column] = self.frame[column].to_numpy(dtype=float)
        return self._numbers[column]

    def where(self, column: str, test: Any, rows: np.ndarray | None = None) -> np.ndarray:
        """`test(value)` for each row (of `rows`, positions into the grid; default all), evaluated once per distinct
        value: `test` takes the array of distinct values and returns one bool each."""
        codes, values = self.codes(column)
        answer = np.asarray(test(np.array(values, dtype=object)), dtype=bool) if values else np.zeros(0, dtype=bool)
        return answer[codes if rows is None else codes[rows]]

    def isin(self, column: str, wanted: Any, rows: np.ndarray | None = None) -> np.ndarray:
        chosen = set(wanted)
        return self.where(column, lambda values: [v in chosen for v in values], rows)


@dataclass
class _Funnel:
    """Applies masks in order to the rows still in (positions into the grid) and counts what each removed."""

    rows: np.ndarray
    removed: dict[str, int] = field(default_factory=dict)

    def keep(self, name: str, mask: np.ndarray) -> None:
        self.removed[name] = self.removed.get(name, 0) + int(mask.size - np.count_nonzero(mask))
        self.rows = self.rows[mask]

def basis_columns(config: Config) -> dict[str, str]:
    """The grid columns the quality thresholds and the ranking read for the configured basis."""
    if config.scan.win_rate_basis == "held":
        return {"win_rate": "win_rate", "sharpe": "sharpe", "score": "trade_score"}
    win = "exit_win_rate_low" if config.scan.use_interval_lower_bound else "exit_win_rate"
    return {"win_rate": win, "sharpe": "exit_sharpe", "score": "exit_trade_score"}


def _group_ids(arrays: ScanArrays, columns: tuple[str, ...], rows: np.ndarray) -> np.ndarray:
    """One integer per row of `rows` that is equal exactly when the rows agree on every column."""
    ids = np.zeros(rows.size, dtype=np.int64)
    span = 1
    for column in columns:
        codes, values = arrays.codes(column)
        width = max(len(values), 1)
        if span * width >= 2**62:  # too many combinations for one integer: renumber the groups so far densely
            ids = np.unique(ids, return_inverse=True)[1].astype(np.int64)
            span = int(ids.max()) + 1 if ids.size else 1
        ids = ids * width + codes[rows]
        span *= width
    return ids


def most_specific(arrays: ScanArrays, rows: np.ndarray) -> np.ndarray:
    """For each setup identity, the rows of its most specific kind: ticker-, regime- and trend-specific rows
    before `all` (regime weighs more than trend, the ticker most)."""
    if rows.size == 0:
        return np.ones(0, dtype=bool)

    def specific(values: np.ndarray) -> np.ndarray:
        return values != "all"

    score = (4 * arrays.where("ticker", specific, rows) + 2 * arrays.where("regime", specific, rows)
             + arrays.where("trend", specific, rows).astype(np.int64))
    # The ticker filter already left (ticker, all) only: the identity without the ticker.
    groups, inverse = np.unique(_group_ids(arrays, IDENTITY[1:], rows), return_inverse=True)
    best = np.full(groups.size, -1, dtype=np.int64)
    np.maximum.at(best, inverse, score)
    return np.asarray(score == best[inverse], dtype=bool)


def best_width(arrays: ScanArrays, rows: np.ndarray, score: str) -> np.ndarray:
    """Of setups differing only in width, the best by the basis's trade score (then the grid's line order)."""
    if rows.size == 0:
        return np.ones(0, dtype=bool)
    ids = _group_ids(arrays, tuple(c for c in IDENTITY if c != "spread_width"), rows)
    order = np.lexsort((arrays.numbers("line")[rows], -arrays.numbers(score)[rows], ids))
    sorted_ids = ids[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    keep = np.zeros(rows.size, dtype=bool)
    keep[order[first]] = True
    return keep


def _flow_ok(arrays: ScanArrays, rows: np.ndarray, flow: str | None, flow_0dte: str | None) -> np.ndarray:
    """domain's flow rule over the rows (0-DTE rows use the short-horizon flow), asked once per combination of flow
    mode and spread type."""
    mode_codes, modes = arrays.codes("flow_mode")
    spread_codes, spreads = arrays.codes("spread_type")
    mode_values = np.array(modes, dtype=object)[:, None]
    spread_values = np.array(spreads, dtype=object)[None, :]
    regular = flow_qualifies_array(mode_values, spread_values, flow or "")
    zero = flow_qualifies_array(mode_values, spread_values, flow_0dte or "")
    m, sp = mode_codes[rows], spread_codes[rows]
    if regular.size == 0:
        return np.zeros(rows.size, dtype=bool)
    return np.where(arrays.numbers("dte")[rows] == 0, zero[m, sp], regular[m, sp])


def filter_grid(frame: pd.DataFrame, *, ticker: str, regime: str | None, trend: str | None, flow: str | None,
                flow_0dte: str | None, config: Config, include_all_widths: bool = False,
                removed: dict[str, int] | None = None, arrays: ScanArrays | None = None) -> pd.DataFrame:
    """Rows passing every filter, in FILTERS order; `removed` (when given) receives the count per filter.
    `arrays`: the frame's ScanArrays when the caller keeps them (a loaded grid does)."""
    arrays = arrays or ScanArrays(frame)
    rows, counts = passing_rows(arrays, ticker=ticker, regime=regime, trend=trend, flow=flow, flow_0dte=flow_0dte,
                                config=config, include_all_widths=include_all_widths)
    if removed is not None:
        removed.update(counts)
    return frame.iloc[rows]


def passing_rows(arrays: ScanArrays, *, ticker: str, regime: str | None, trend: str | None, flow: str | None,
                 flow_0dte: str | None, config: Config,
                 include_all_widths: bool = False) -> tuple[np.ndarray, dict[str, int]]:
    """The positions (in grid order) of the rows passing every filter, and the rows each filter removed."""
    funnel = _Funnel(np.arange(arrays.size))
    if regime is None or arrays.size == 0:
        funnel.keep("regime", np.zeros(arrays.size, dtype=bool))
        return funnel.rows, dict.fromkeys(FILTERS, 0) | funnel.removed
    rec = config.regime.recommendations[regime]
    spread_types = config.regime.trend_spreads.get(trend, rec.spread_types) if trend else rec.spread_types
    increment = config.tickers[ticker].strike_increment if ticker in config.tickers else None
    dtes = set(rec.dtes)
    # One test at a time on the rows still in (each removed row counted by the first filter that removes it).
    funnel.keep("ticker", arrays.isin("ticker", (ticker, "all")))
    funnel.keep("off_chain_width", arrays.where("spread_width", lambda w: on_chain(w.astype(float), increment),
                                                funnel.rows))
    for column, allowed in (("regime", (regime, "all")), ("band", rec.bands), ("flow_mode", rec.flow_modes)):
        funnel.keep("regime", arrays.isin(column, allowed, funnel.rows))
    funnel.keep("regime", arrays.where("dte", lambda d: [int(v) in dtes for v in d], funnel.rows))
    funnel.keep("trend", arrays.isin("trend", (trend, "all") if trend else ("all",), funnel.rows))
    funnel.keep("trend", arrays.isin("spread_type", spread_types, funnel.rows))
    funnel.keep("less_specific", most_specific(arrays, funnel.rows))
    funnel.keep("flow", _flow_ok(arrays, funnel.rows, flow, flow_0dte))
    _quality(funnel, arrays, config)
    if not include_all_widths:
        funnel.keep("other_width", best_width(arrays, funnel.rows, basis_columns(config)["score"]))
    return funnel.rows, {name: funnel.removed.get(name, 0) for name in FILTERS}


def on_chain(widths: np.ndarray, increment: float | None) -> np.ndarray:
    """Widths that are whole numbers of the strike increment (every width when the increment is unknown)."""
    if increment is None:
        return np.ones(widths.size, dtype=bool)
    steps = widths / increment
    return np.asarray((np.abs(steps - np.round(steps)) < 1e-6) & (np.round(steps) >= 1), dtype=bool)


def _quality(funnel: _Funnel, arrays: ScanArrays, config: Config) -> None:
    q = config.scan
    cols = basis_columns(config)
    if q.win_rate_basis == "managed":
        funnel.keep("no_managed_figures", np.isfinite(arrays.numbers(cols["win_rate"])[funnel.rows])
                    & np.isfinite(arrays.numbers(cols["score"])[funnel.rows]))
    checks = (("min_win_rate", cols["win_rate"], q.min_win_rate), ("min_roi", "roi", q.min_roi),
              ("min_sharpe", cols["sharpe"], q.min_sharpe), ("min_composite_score", cols["score"],
                                                             q.min_composite_score),
              ("min_trades", "n_trades", q.min_trades))
    for name, column, threshold in checks:
        funnel.keep(name, arrays.numbers(column)[funnel.rows] >= threshold)


# ------------------------------------------------------------------------------------------------------------
# The scan


@dataclass(frozen=True)
class _Context:
    """What building one opportunity needs besides its row."""

    ticker: str
    now: datetime
    calendar: MarketCalendar
    config: Config
    price: float | None
    closes: np.ndarray
    opens: np.ndarray
    book: BookState | None
    increment: float | None
    expiries: dict[int, str | None]
    edges: dict[tuple[int, str], tuple[float, float] | None]
    events: EventCalendar | None = None
    held: dict[int, str | None] = field(default_factory=dict)  # dte -> why entries are held back


def scan(
    grid: Grid,
    *,
    ticker: str,
    now: datetime,
    calendar: MarketCalendar,
    config: Config,
    regime: str | None,
    trend: str | None,
    flow: str | None,
    flow_0dte: str | None,
    price: float | None,
    daily_closes: tuple[float, ...] | list[float] = (),
    daily_opens: tuple[float, ...] | list[float] = (),
    book: BookState | None = None,
    include_all: bool = False,
    events: EventCalendar | None = None,
) -> ScanResult:
    arrays = grid.scan_arrays
    rows, removed = passing_rows(arrays, ticker=ticker, regime=regime, trend=trend, flow=flow, flow_0dte=flow_0dte,
                                 config=config, include_all_widths=include_all)
    in_window = _in_window(arrays.numbers("entry_minutes")[rows], now, calendar, config)
    score = basis_columns(config)["score"]
    order = np.lexsort((arrays.numbers("line")[rows], -arrays.numbers(score)[rows], ~in_window))
    if not include_all:
        order = order[: config.scan.top_n]
    increment = config.tickers[ticker].strike_increment if ticker in config.tickers else None
    ctx = _Context(ticker=ticker, now=now, calendar=calendar, config=config, price=price,
                   closes=np.asarray(daily_closes, dtype=float), opens=np.asarray(daily_opens, dtype=float),
                   book=book, increment=increment, expiries={}, edges={}, events=events)
    opportunities = tuple(_opportunity(row, rank, bool(win), ctx) for rank, (row, win) in enumerate(
        zip(arrays.records(rows[order]), in_window[order], strict=True), start=1))
    return ScanResult(ticker=ticker, regime=regime, skipped_rows=grid.skipped_rows, matching_count=int(rows.size),
                      opportunities=opportunities, skipped_by_reason=dict(grid.skipped_by_reason), removed=removed,
                      out_of_window=int((~in_window).sum()), refused_widths=refused_widths(arrays, ticker, increment),
                      strike_increment=increment)


def refused_widths(arrays: ScanArrays, ticker: str, increment: float | None) -> tuple[float, ...]:
    """The widths of the ticker's rows (its own and `all`) that are not on its strike grid, smallest first."""
    codes, widths = arrays.codes("spread_width")
    present = np.bincount(codes[arrays.isin("ticker", (ticker, "all"))], minlength=len(widths)) > 0
    values = np.array(widths, dtype=float)
    return tuple(sorted(float(w) for w in values[present & ~on_chain(values, increment)]))


def _in_window(entry_minutes: np.ndarray, now: datetime, calendar: MarketCalendar, config: Config) -> np.ndarray:
    """Within tolerance of the row's ET entry time, inside the preferred hours, on an open session."""
    hours = config.hours
    window_open = calendar.within_local_hours(now, hours.entry_start, hours.entry_end)
    now_et = now.astimezone(ET)
    now_minutes = now_et.hour * 60 + now_et.minute + now_et.second / 60
    near = np.abs(entry_minutes - now_minutes) <= hours.entry_tolerance_minutes
    return np.asarray(near & window_open, dtype=bool)


def _opportunity(row: Any, rank: int, win: bool, ctx: _Context) -> Opportunity:
    dte = int(row.dte)
    width = float(row.spread_width)
    edges = _row_edges(row, ctx.closes, ctx.opens, ctx.config.market.band_window_sessions, ctx.edges)
    strikes = None
    if ctx.price is not None and edges is not None and ctx.increment is not None:
        strikes = place_strikes(ctx.price, edges[0], edges[1], width, ctx.increment, row.spread_type)
    if dte not in ctx.expiries:
        session = _entry_session(ctx.calendar, ctx.now)
        ctx.expiries[dte] = ctx.calendar.expiry_for(session, dte).isoformat() if session is not None else None
    if dte not in ctx.held:
        ctx.held[dte] = _held_back(ctx, ctx.expiries[dte])
    risk = ctx.config.risk
    blocked = ctx.book is not None and (
        ctx.book.open_count >= risk.max_positions or ctx.book.open_risk + float(row.avg_max_risk) > risk.max_total_risk)
    basis = ctx.config.scan.win_rate_basis
    flag = getattr(row, "low_sample", None)
    return Opportunity(
        id=opportunity_id(ctx.ticker, dte, row.band, row.spread_type, row.flow_mode, width, row.entry_time_et),
        rank=rank, ticker=ctx.ticker, dte=dte, band=row.band, spread_type=row.spread_type, flow_mode=row.flow_mode,
        spread_width=width, entry_time_et=row.entry_time_et,
        entry_time_local=_local_entry(ctx.calendar, ctx.now, row.entry_time_et),
        entry_zone=_entry_zone(ctx.calendar, ctx.now, row.entry_time_et),
        win_rate=float(row.win_rate), roi=float(row.roi), sharpe=float(row.sharpe),
        trade_score=float(row.exit_trade_score if basis == "managed" else row.trade_score),
        credit=float(row.avg_credit), max_risk=float(row.avg_max_risk), n_trades=int(row.n_trades),
        in_window=win, blocked_by_risk=bool(blocked), strikes=strikes, expiry=ctx.expiries[dte],
        credit_source=_text_or_none(getattr(row, "credit_source", None)), regime=row.regime, trend=row.trend,
        basis=basis, avg_pnl=_num(row.avg_pnl), expected_return=_num(row.expected_return),
        exit_win_rate=_num(row.exit_win_rate), exit_avg_pnl=_num(row.exit_avg_pnl),
        exit_expected_return=_num(row.exit_expected_return), exit_sharpe=_num(row.exit_sharpe),
        exit_win_rate_low=_num(row.exit_win_rate_low), exit_win_rate_high=_num(row.exit_win_rate_high),
        n_effective=_num(row.n_effective), low_sample=flag if isinstance(flag, bool) else None,
        held_back=ctx.held[dte],
    )


def _held_back(ctx: _Context, expiry: str | None) -> str | None:
    """The event that holds back an entry now with this expiry, as people read it ("FOMC 2026-12-09")."""
    if ctx.events is None:
        return None
    session = _entry_session(ctx.calendar, ctx.now)
    if session is None:
        return None
    event = ctx.events.held_back_by(session, date.fromisoformat(expiry) if expiry else None)
    return None if event is None else event.label


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _entry_session(calendar: MarketCalendar, now: datetime) -> Any:
    try:
        return calendar.entry_session(now)
    except ValueError:  # beyond the calendar's range
        return None


def _row_edges(row: Any, closes: np.ndarray, opens: np.ndarray, window: int,
               cache: dict[tuple[int, str], tuple[float, float] | None]) -> tuple[float, float] | None:
    """The band's (lower, upper) move: the grid's columns, else the trailing moves of the underlying."""
    lower, upper = float(row.band_lower_move), float(row.band_upper_move)
    if np.isfinite(lower) and np.isfinite(upper):
        return lower, upper
    key = (int(row.dte), row.band)
    if key not in cache:
        if key[0] == 0:
            moves = intraday_moves(opens, closes) if opens.size == closes.size else np.empty(0)
        else:
            moves = signed_moves(closes, key[0])
        moves = moves[np.isfinite(moves)]
        cache[key] = band_edges(moves[-window:], row.band) if moves.size >= window else None
    return cache[key]


def _entry_instant(now: datetime, entry_et: str) -> datetime:
    day = now.astimezone(ET).date()
    return datetime.combine(day, time(int(entry_et[:2]), int(entry_et[3:])), tzinfo=ET)


def _local_entry(calendar: MarketCalendar, now: datetime, entry_et: str) -> str:
    return _entry_instant(now, entry_et).astimezone(calendar.display_tz).strftime("%H:%M")


def _entry_zone(calendar: MarketCalendar, now: datetime, entry_et: str) -> str:
    return zone_abbreviation(_entry_instant(now, entry_et).astimezone(calendar.display_tz))


def removed_lines(result: ScanResult) -> list[str]:
    """What each filter removed, for `scan` when nothing passes (and `scan --json`'s removed_by_filter)."""
    lines = [f"  impossible grid rows skipped: {result.skipped_rows}"
             + (f" ({', '.join(f'{k}: {v}' for k, v in result.skipped_by_reason.items())})"
                if result.skipped_by_reason else "")]
    lines += [f"  removed by {name}: {result.removed.get(name, 0)}" for name in FILTERS]
    lines.append(f"  passing but outside their entry window now: {result.out_of_window}")
    if result.refused_widths and result.strike_increment is not None:
        widths = ", ".join(f"{w:g}" for w in result.refused_widths)
        lines.append(f"  refused width(s) {widths}: not a multiple of {result.ticker}'s strike increment "
                     f"{result.strike_increment:g}")
    return lines
