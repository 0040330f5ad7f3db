"""`spreadwatch grid build`: the I/O edge of the grid builder.

Owns reading history (a CSV in the replay format via `csv:FILE`, or a provider such as `yahoo`), reading option
chain CSVs (`--chains DIR`), the XNYS session list, the progress bar, and writing the canonical grid CSV (and the
PNG report). The backtest itself is pure and lives in backtest.py; the method is in docs/grid-builder.md.

Must not: compute any statistic (backtest.py does), or invent data: a missing vol index or VIX close stays NaN
(no model credit for that entry; regime unknown, so the entry counts only in the `all` rows).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from spreadwatch.domain.backtest import BuildResult, BuildSpec, ChainBook, History, build_grid
from spreadwatch.edges.calendar import ET, MarketCalendar
from spreadwatch.edges.replayfile import history_frame
from spreadwatch.errors import DataError, InputError, MalformedValue

if TYPE_CHECKING:
    from spreadwatch.config import Config

CHAIN_COLUMNS = ("timestamp", "type", "strike", "bid", "ask", "expiration")
DEFAULT_DAYS_LIVE = 90


@dataclass
class BuildRequest:
    ticker: str
    source: str = "yahoo"
    days: int | None = None
    start: date | None = None
    end: date | None = None
    chains_dir: str | None = None
    dtes: Sequence[int] = (0, 1, 3, 5, 10)
    bands: Sequence[str] = ("P95", "P97", "P98", "P99", "P100")
    widths: Sequence[float] | None = None  # None: DEFAULT_WIDTH_STEPS strike increments of the ticker
    out: str = "grid.csv"
    report: str | None = None
    progress: bool = True


# Default widths in strike increments: SPX (5) 10, 25 and 50 points; NDX (10) 20, 50 and 100.
DEFAULT_WIDTH_STEPS = (2, 5, 10)


# ------------------------------------------------------------------------------------------------------------
# History


def daily_bars(rows: pd.DataFrame, symbols: Sequence[str]) -> pd.DataFrame:
    """One bar per session for the first of `symbols` present: several rows on a date (intraday bars) are
    aggregated (first open, max high, min low, last close)."""
    for symbol in symbols:
        picked = rows[rows["symbol"] == symbol]
        if not picked.empty:
            grouped = picked.groupby("day", sort=True)
            return pd.DataFrame({
                "open": grouped["open"].first(), "high": grouped["high"].max(), "low": grouped["low"].min(),
                "close": grouped["close"].last(),
            })
    return pd.DataFrame(columns=["open", "high", "low", "close"])


def history_from_frames(price: pd.DataFrame, vol: pd.DataFrame, vix: pd.DataFrame) -> History:
    """Align the vol index and VIX closes on the underlying's sessions (NaN where absent)."""
    price = price.dropna(subset=["open", "high", "low", "close"])
    if price.empty:
        raise DataError("no daily bars of the underlying")
    days = list(price.index)
    return History(
        dates=np.array(days, dtype="datetime64[D]"),
        open=price["open"].to_numpy(float), high=price["high"].to_numpy(float),
        low=price["low"].to_numpy(float), close=price["close"].to_numpy(float),
        vol_index=vol["close"].reindex(days).to_numpy(float) if not vol.empty else np.full(len(days), np.nan),
        vix=vix["close"].reindex(days).to_numpy(float) if not vix.empty else np.full(len(days), np.nan),
    )


def history_from_csv(path: Path, price_symbols: Sequence[str], vol_symbol: str, vix_symbol: str) -> History:
    rows = history_frame(path)
    price = daily_bars(rows, price_symbols)
    if price.empty:
        raise DataError(f"{path}: no rows for {' or '.join(price_symbols)}")
    vol = daily_bars(rows, [vol_symbol])
    if vol.empty:
        raise DataError(f"{path}: no rows for {vol_symbol}: the model prices options from the ticker's vol index")
    vix = daily_bars(rows, [vix_symbol]) if vix_symbol != vol_symbol else vol
    return history_from_frames(price, vol, vix)


_PACKAGE_DIR = Path(__file__).resolve().parent.parent


@contextmanager
def quiet_third_party_warnings() -> Iterator[None]:
    """Drop deprecation noise (FutureWarning, DeprecationWarning such as pandas' Pandas4Warning) that libraries
    under the provider (yfinance calling pandas) emit while fetching: a user of `grid build` cannot act on it, and
    with Yahoo unreachable it printed before the one-line error. Other warnings, and any raised from spreadwatch's
    own files, are shown as usual once the block ends.

    Warnings are recorded rather than filtered because yfinance installs its own filter when first imported,
    which may happen inside this block (ahead of any filter set here)."""
    with warnings.catch_warnings(record=True) as caught:
        try:
            yield
        finally:
            kept = [w for w in caught if not _third_party_deprecation(w)]
    for w in kept:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _third_party_deprecation(w: warnings.WarningMessage) -> bool:
    if not issubclass(w.category, FutureWarning | DeprecationWarning):
        return False
    try:
        return not Path(w.filename).resolve().is_relative_to(_PACKAGE_DIR)
    except (OSError, ValueError):
        return True


def history_from_provider(provider: Any, price_symbol: str, vol_symbol: str, vix_symbol: str, before: date,
                          count: int) -> History:
    """Daily bars through the provider interface (providers/__init__.py)."""
    from spreadwatch.edges.providers import ProviderError

    def frame(symbol: str, required: bool) -> pd.DataFrame:
        try:
            with quiet_third_party_warnings():
                bars = provider.daily(symbol, before, count)
        except ProviderError as exc:
            if required:
                raise DataError(f"history: {exc}") from None
            bars = []
        return pd.DataFrame([{"day": b.day, "open": b.open, "high": b.high, "low": b.low, "close": b.close}
                             for b in bars], columns=["day", "open", "high", "low", "close"]).set_index("day")

    return history_from_frames(frame(price_symbol, True), frame(vol_symbol, True), frame(vix_symbol, False))


# ------------------------------------------------------------------------------------------------------------
# Chains


def read_chains(directory: Path) -> ChainBook:
    """Every *.csv under `directory`: quotes by (entry session, expiration), the session's first snapshot only."""
    files = sorted(directory.glob("*.csv")) if directory.is_dir() else []
    if not files:
        raise DataError(f"{directory}: no chain CSVs (expected *.csv with {', '.join(CHAIN_COLUMNS)})")
    frames = []
    for path in files:
        try:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, comment="#")
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path}: cannot read chain CSV: {str(exc).splitlines()[0]}") from None
        raw.columns = [c.strip().lower() for c in raw.columns]
        missing = [c for c in CHAIN_COLUMNS if c not in raw.columns]
        if missing:
            raise DataError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
        times = pd.to_datetime(raw["timestamp"].str.strip(), utc=True, errors="coerce", format="ISO8601")
        kinds = raw["type"].str.strip().str.lower().map(
            {"p": "put", "put": "put", "c": "call", "call": "call"})
        expiry = pd.to_datetime(raw["expiration"].str.strip(), errors="coerce").dt.date
        nums = {c: pd.to_numeric(raw[c].str.strip(), errors="coerce") for c in ("strike", "bid", "ask")}
        checks = {"timestamp": times.isna(), "type": kinds.isna(), "expiration": expiry.isna(),
                  "strike": nums["strike"].isna() | (nums["strike"] <= 0)}
        for col in ("bid", "ask"):
            checks[col] = nums[col].isna() & (raw[col].str.strip() != "")
        for col, bad in checks.items():
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"{path}: line {i + 2}: column {col}: bad value {raw[col].iloc[i]!r}")
        frames.append(pd.DataFrame({"time": times, "type": kinds, "expiration": expiry, **nums}))
    quotes = pd.concat(frames, ignore_index=True)
    quotes["day"] = quotes["time"].dt.tz_convert(ET).dt.date
    first = quotes.groupby("day")["time"].transform("min")
    quotes = quotes[quotes["time"] == first]
    book: dict[tuple[date, date], dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for (day, expiration, kind), group in quotes.groupby(["day", "expiration", "type"]):
        group = group.sort_values("strike").drop_duplicates("strike", keep="last")
        book.setdefault((day, expiration), {})[kind] = (
            group["strike"].to_numpy(float), group["bid"].to_numpy(float), group["ask"].to_numpy(float))
    return ChainBook(quotes=book)


# ------------------------------------------------------------------------------------------------------------
# Output


def write_grid(frame: pd.DataFrame, path: Path) -> None:
    """The canonical CSV, written to a temporary file and renamed (a reader never sees half a grid)."""
    out = frame.copy()
    out["low_sample"] = out["low_sample"].map({True: "true", False: "false"})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    out.to_csv(tmp, index=False, float_format="%.8g")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------------------
# The command


def sessions_for(history: History, calendar: MarketCalendar, max_dte: int) -> np.ndarray:
    first = history.dates[0].item()
    if first < calendar.first_known_session:
        raise DataError(f"history starts {first}, before the exchange calendar ({calendar.first_known_session})")
    last = min(history.dates[-1].item() + timedelta(days=2 * max_dte + 10), calendar.last_day)
    return np.array(calendar.sessions_in_range(first, last), dtype="datetime64[D]")


def load_history(config: Config, request: BuildRequest, max_dte: int) -> History:
    ticker = config.ticker(request.ticker)
    source = request.source.strip()
    if source.startswith("csv:"):
        if not source[len("csv:"):].strip():
            raise MalformedValue("--source csv:FILE needs a file")
        path = Path(source[len("csv:"):])
        return history_from_csv(path, (ticker.price_symbol, request.ticker), ticker.vol_index,
                                config.market.vix_symbol)
    if source == "yahoo":
        from spreadwatch.edges.providers import make_provider

        calendar = MarketCalendar.of(config)
        before = _read_before(calendar, request.end, max_dte)
        if request.start is not None:
            entries = len(calendar.sessions_in_range(request.start, before))
        else:
            entries = request.days or DEFAULT_DAYS_LIVE
        # Bars: the entries, the trailing window and the DTE horizon before them, the expiries after --end.
        count = entries + config.market.band_window_sessions + 2 * max_dte + 30
        with quiet_third_party_warnings():
            provider = make_provider("yahoo")
        return history_from_provider(provider, ticker.price_symbol, ticker.vol_index, config.market.vix_symbol,
                                     before, count)
    raise MalformedValue(f"unknown --source {source!r}; use yahoo or csv:FILE")


def _read_before(calendar: MarketCalendar, end: date | None, max_dte: int) -> date:
    """The day before which the provider's history is read: past --end by `max_dte` sessions, so the entries of
    the last sessions up to --end have their expiry bars (entries still stop at --end); never past tomorrow."""
    tomorrow = date.today() + timedelta(days=1)
    if end is None:
        return tomorrow
    last = end
    if max_dte > 0:
        horizon = min(end + timedelta(days=2 * max_dte + 10), calendar.last_day)
        ahead = calendar.sessions_in_range(end + timedelta(days=1), horizon)
        if ahead:
            last = ahead[min(max_dte, len(ahead)) - 1]
    return min(last + timedelta(days=1), tomorrow)


def entry_range(history: History, request: BuildRequest) -> tuple[date | None, date | None]:
    if request.days is not None and request.start is not None:
        raise InputError("give --days (optionally with --end) or --start/--end, not both")
    if request.days is not None:
        if request.days < 1:
            raise MalformedValue("--days must be >= 1")
        dates = history.dates
        if request.end is not None:
            dates = dates[dates <= np.datetime64(request.end, "D")]
        if dates.size == 0:
            raise DataError(f"no history on or before --end {request.end}")
        return dates[max(0, len(dates) - request.days)].item(), request.end
    if request.start is None and request.end is None and request.source.strip() == "yahoo":
        dates = history.dates
        return dates[max(0, len(dates) - DEFAULT_DAYS_LIVE)].item(), None
    return request.start, request.end


def build(config: Config, request: BuildRequest) -> BuildResult:
    """Read history (and chains), run the backtest, write the grid (and the report)."""
    from spreadwatch.domain.vocabulary import BANDS

    for band in request.bands:
        if band not in BANDS:
            raise MalformedValue(f"unknown band {band!r} (known: {', '.join(BANDS)})")
    if not request.dtes or any(d < 0 for d in request.dtes):
        raise MalformedValue("--dte needs whole numbers >= 0")
    ticker = config.ticker(request.ticker)
    widths = tuple(request.widths) if request.widths is not None else tuple(
        float(step * ticker.strike_increment) for step in DEFAULT_WIDTH_STEPS)
    check_widths(widths, request.ticker, ticker.strike_increment)
    max_dte = max(request.dtes)
    history = load_history(config, request, max_dte)
    first_entry, last_entry = entry_range(history, request)
    calendar = MarketCalendar.of(config)
    sessions = sessions_for(history, calendar, max_dte)
    chains = read_chains(Path(request.chains_dir)) if request.chains_dir else None
    costs = config.grid_build
    spec = BuildSpec(
        ticker=request.ticker, dtes=tuple(request.dtes), bands=tuple(request.bands), widths=widths,
        commission_per_leg=costs.commission_per_leg, slippage_per_leg=costs.slippage_per_leg,
        strike_increment=ticker.strike_increment, profit_target_pct=config.exits.profit_target_pct,
        stop_loss_mult=config.exits.stop_loss_mult, time_exit_dte=config.exits.time_exit_dte,
        boundaries=dict(config.regime.boundaries), hysteresis=config.regime.hysteresis,
        flow_dead_band=config.market.flow_dead_band, window=config.market.band_window_sessions,
        first_entry=first_entry, last_entry=last_entry,
    )
    result = _run_with_progress(history, sessions, spec, chains, request.progress)
    if result.frame.empty:
        raise DataError(
            f"no trades: {len(history.dates)} sessions of history give no entry with {spec.window} trailing moves, "
            f"an expiry bar and a credit (no trade: {_reasons(result.no_trade)})")
    write_grid(result.frame, Path(request.out))
    if request.report:
        from spreadwatch.edges.report import write_report

        write_report(result.frame, Path(request.report), title=f"{request.ticker} grid ({result.frame['credit_source'].iloc[0]})")
    return result


def check_widths(widths: Sequence[float], ticker: str, increment: float) -> None:
    """Every width must be a whole number of strike increments, so the long legs are listed strikes."""
    from spreadwatch.domain.backtest import is_multiple

    if not widths or any(w <= 0 for w in widths):
        raise MalformedValue("--widths need numbers > 0")
    for width in widths:
        if not is_multiple(width, increment):
            raise InputError(f"--widths: {width:g} is not a multiple of {ticker}'s strike increment {increment:g} "
                             f"(tickers.{ticker}.strike_increment): its long legs would not be listed strikes")


def _reasons(no_trade: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in no_trade.items() if v) or "none"


def _run_with_progress(history: History, sessions: np.ndarray, spec: BuildSpec, chains: ChainBook | None,
                       show: bool) -> BuildResult:
    if not show or not sys.stderr.isatty():
        return build_grid(history, sessions, spec, chains=chains)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("build", total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return build_grid(history, sessions, spec, chains=chains, progress=step)


def summary_lines(result: BuildResult, request: BuildRequest) -> list[str]:
    frame = result.frame
    lines = [
        f"wrote {request.out}: {len(frame)} rows ({result.configs} configs x regime x trend with trades), "
        f"credits from the {frame['credit_source'].iloc[0]}",
        f"entry sessions backtested {frame['data_start'].min()} .. {frame['data_end'].max()} (data_start .. "
        f"data_end, per DTE in the grid); up to {result.entries} entries per DTE; history read "
        f"{result.history_start} .. {result.history_end} (trailing bands before, expiries after)",
        f"no trade (entry x config): {_reasons(result.no_trade)}",
        f"low-sample rows (fewer than 30 effective trades): {int(frame['low_sample'].sum())}",
        f"costs per contract per leg: ${frame['commission_per_leg'].iloc[0]:.2f} commission, "
        f"${frame['slippage_per_leg'].iloc[0]:.2f} slippage; managed figures (exit_*) with the config's exit rules",
    ]
    if request.report:
        lines.append(f"wrote {request.report}")
    return lines
