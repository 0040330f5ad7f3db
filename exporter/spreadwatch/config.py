"""Configuration: the schema, its defaults, loading and validation.

Owns: finding the file (`--config`, then `SPREADWATCH_CONFIG`, then the embedded defaults), rejecting unknown keys
and wrong types with the key path named, the consistency pass, and the map from the original system's settings to
where they live now. Must not: read market data, the database or the clock.

The commented `spreadwatch.example.yml` at the repository root documents every key; a test checks that loading it
gives exactly the defaults below.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any

from spreadwatch.domain.vocabulary import BANDS, FLOW_MODES, REGIMES, SPREAD_TYPES, TREND_CHOICES, TRENDS
from spreadwatch.errors import ConfigError

ENV_CONFIG = "SPREADWATCH_CONFIG"

# Settings of the original system (scripts/continuous/config.py) that another component owns here.
FOREIGN_SETTINGS: dict[str, str] = {
    "dashboard_enabled": "the dashboard is Grafana now: grafana/ and docker-compose.yml",
    "dashboard_port": "the dashboard is Grafana now: its port is set in docker-compose.yml (3000)",
    "dashboard_refresh_seconds": "the dashboard is Grafana now: refresh is set in the generated dashboard (grafana/)",
    "alert_to_console": "the exporter always logs events to the console (logging.console)",
    "alert_to_file": "the exporter's event log file is paths.log_file",
    "alert_to_email": "notifications are Alertmanager's job: alertmanager/alertmanager.yml",
    "alert_to_slack": "notifications are Alertmanager's job: alertmanager/alertmanager.yml",
    "trading_start_hour": "hours.trading_start (HH:MM in display_timezone)",
    "trading_end_hour": "hours.trading_end (HH:MM in display_timezone)",
    "preferred_entry_hours": "hours.entry_start / hours.entry_end (HH:MM in display_timezone)",
    "scan_interval_seconds": "intervals.scan_seconds",
    "market_data_interval_seconds": "intervals.market_data_seconds",
    "regime_top_n_configs": "scan.top_n",
}

# Keys whose values are fractions; a value above 1 is almost certainly a percent.
RATIO_KEYS = {"min_win_rate", "min_roi", "profit_target_pct"}


@dataclass(frozen=True)
class Intervals:
    market_data_seconds: int = 60
    scan_seconds: int = 300
    positions_seconds: int = 60


@dataclass(frozen=True)
class Hours:
    # Local times in display_timezone. They are clipped to the real XNYS session of each day (so a trading_start
    # before the open never makes a closed market look open).
    trading_start: time = time(6, 30)
    trading_end: time = time(13, 0)
    entry_start: time = time(6, 30)  # the open: backtests on daily bars can only enter there (09:30 ET)
    entry_end: time = time(8, 59)
    entry_tolerance_minutes: int = 15


WIN_RATE_BASES: tuple[str, ...] = ("managed", "held")


@dataclass(frozen=True)
class Scan:
    top_n: int = 20
    # Setups one opportunity notification lists per ticker and entry window (#1, #2, #3).
    notify_top: int = 3
    # Thresholds on the managed figures (win_rate_basis): honest backtests after costs put the managed win rate
    # of index credit spreads near 70-90 % and credit / risk near 4-20 % (docs/grid.md, "Defaults").
    min_composite_score: float = 50.0
    min_win_rate: float = 0.70
    min_roi: float = 0.04
    min_sharpe: float = 0.10
    min_trades: int = 10
    skip_impossible: bool = True
    # managed: filter and rank on the figures with the exit rules (exit_*); held: on the held-to-expiry figures.
    win_rate_basis: str = "managed"
    # true: min_win_rate applies to the lower bound of the managed win rate's 95 % interval.
    use_interval_lower_bound: bool = False


@dataclass(frozen=True)
class GridBuild:
    """Costs the grid builder charges every backtested trade (dollars per contract per leg)."""

    commission_per_leg: float = 0.65
    slippage_per_leg: float = 5.0


@dataclass(frozen=True)
class Exits:
    profit_target_pct: float = 0.50
    stop_loss_mult: float = 2.0
    time_exit_dte: int = 1
    pnl_stale_after_minutes: int = 120
    # SpreadwatchShortStrikeNear: the price within this many expected moves of a short strike fires it; once firing
    # it holds until the price is more than `short_strike_clear_expected_moves` away (a hovering price notifies once).
    short_strike_near_expected_moves: float = 0.5
    short_strike_clear_expected_moves: float = 0.75
    # The P&L the profit target and the stop evaluate: the first of these with a current value (the logged P&L while
    # younger than pnl_stale_after_minutes; a mark while its market data is); ["logged"] evaluates the logged P&L only.
    pnl_sources: tuple[str, ...] = ("logged", "market", "model")


@dataclass(frozen=True)
class Marks:
    """The market mark: open positions marked at the mids of a delayed option chain (live data only)."""

    chain: bool = False  # off by default: the model mark needs no chain
    chain_interval_seconds: int = 300  # at most one request per chain (symbol and expiry) this often
    chain_delay_minutes: int = 15  # the chain's stated quote delay: a mark fetched at t describes t - this


@dataclass(frozen=True)
class Risk:
    max_positions: int = 5
    max_total_risk: float = 50000.0


@dataclass(frozen=True)
class Recommendation:
    spread_types: tuple[str, ...]
    bands: tuple[str, ...]
    dtes: tuple[int, ...]
    flow_modes: tuple[str, ...]


def _default_recommendations() -> dict[str, Recommendation]:
    return {
        "very_low": Recommendation(("iron_condor",), ("P99", "P100"), (3, 5), ("neutral",)),
        "low": Recommendation(("iron_condor", "put_spread"), ("P97", "P98", "P99"), (1, 3, 5), ("with_flow",)),
        "medium": Recommendation(("put_spread", "iron_condor"), ("P97", "P98"), (1, 3), ("with_flow",)),
        "high": Recommendation(("put_spread",), ("P95", "P97"), (1,), ("with_flow",)),
        "extreme": Recommendation(("put_spread",), ("P95",), (1,), ("with_flow",)),
    }


def _default_trend_spreads() -> dict[str, tuple[str, ...]]:
    return {"up": ("call_spread", "iron_condor"), "down": ("put_spread",)}


@dataclass(frozen=True)
class Regime:
    # Lower bound of each regime above very_low: very_low < 12 <= low < 16 <= medium < 20 <= high < 30 <= extreme.
    boundaries: dict[str, float] = field(
        default_factory=lambda: {"low": 12.0, "medium": 16.0, "high": 20.0, "extreme": 30.0}
    )
    hysteresis: float = 0.5
    recommendations: dict[str, Recommendation] = field(default_factory=_default_recommendations)
    # Trend up/down replace the regime's spread types; sideways keeps the regime's list.
    trend_spreads: dict[str, tuple[str, ...]] = field(default_factory=_default_trend_spreads)


@dataclass(frozen=True)
class Ticker:
    price_symbol: str
    vol_index: str
    volume_symbol: str
    strike_increment: float
    # The symbol of the ticker's options on the chain provider (the market mark): ^SPX for SPX, whose price symbol
    # ^GSPC has none. Empty: no market mark for this ticker.
    chain_symbol: str = ""


def _default_tickers() -> dict[str, Ticker]:
    return {
        "NDX": Ticker("^NDX", "^VXN", "QQQ", 10.0, "^NDX"),
        "SPX": Ticker("^GSPC", "^VIX", "SPY", 5.0, "^SPX"),
    }


@dataclass(frozen=True)
class Market:
    calendar: str = "XNYS"
    vix_symbol: str = "^VIX"
    trend: str = "sideways"
    stale_after_seconds: int = 180
    flow_dead_band: float = 0.001
    flow_0dte_dead_band: float = 0.0005
    flow_0dte_minutes: int = 10
    band_window_sessions: int = 100
    iv_window_sessions: int = 252
    volume_window_sessions: int = 20


@dataclass(frozen=True)
class Paths:
    database: str = "data/spreadwatch.db"
    grid: str = ""  # empty: the grid bundled with the package
    log_file: str = "logs/spreadwatch.log"


def _default_event_policies() -> dict[str, str]:
    from spreadwatch.domain.events import DEFAULT_POLICIES

    return dict(DEFAULT_POLICIES)


@dataclass(frozen=True)
class Events:
    """Scheduled market events (domain/events.py): where the calendar comes from and what each kind does."""

    file: str = ""  # empty: the calendar bundled with the package (data/events.csv)
    # More events, by kind: {fomc: ["2026-12-16"]}; added to the file's.
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Per kind: hold_day (no new entries that day), hold_through (none whose DTE reaches the day) or mark; a kind
    # not named keeps its default.
    policy: dict[str, str] = field(default_factory=_default_event_policies)


@dataclass(frozen=True)
class Digest:
    """The morning brief and the end-of-day summary (app/digest.py), sent through Alertmanager once per session."""

    morning_brief: bool = True
    brief_minutes_before_open: int = 30
    day_summary: bool = True
    summary_minutes_after_close: int = 5
    # How long each digest's alert stays up (SpreadwatchMorningBrief / SpreadwatchDaySummary); Alertmanager sends it
    # once in that time.
    window_minutes: int = 30


@dataclass(frozen=True)
class Logging:
    level: str = "INFO"
    console: bool = True
    file_max_bytes: int = 5_000_000
    file_backups: int = 5


@dataclass(frozen=True)
class Config:
    display_timezone: str = "America/Los_Angeles"
    tickers: dict[str, Ticker] = field(default_factory=_default_tickers)
    watch: tuple[str, ...] = ("SPX",)
    intervals: Intervals = field(default_factory=Intervals)
    hours: Hours = field(default_factory=Hours)
    market: Market = field(default_factory=Market)
    scan: Scan = field(default_factory=Scan)
    grid_build: GridBuild = field(default_factory=GridBuild)
    exits: Exits = field(default_factory=Exits)
    marks: Marks = field(default_factory=Marks)
    risk: Risk = field(default_factory=Risk)
    regime: Regime = field(default_factory=Regime)
    paths: Paths = field(default_factory=Paths)
    logging: Logging = field(default_factory=Logging)
    events: Events = field(default_factory=Events)
    digest: Digest = field(default_factory=Digest)
    config_file: Path | None = field(default=None, compare=False)  # the file it came from, if any

    def ticker(self, name: str) -> Ticker:
        try:
            return self.tickers[name]
        except KeyError:
            raise ConfigError(f"unknown ticker {name!r}; configured: {', '.join(sorted(self.tickers))}") from None


# --------------------------------------------------------------------------------------------------------------
# Loading


def find_config_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    """`--config`, then `SPREADWATCH_CONFIG`, then None (embedded defaults)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_CONFIG)
    return Path(env) if env else None


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    path = find_config_path(explicit)
    if path is None:
        return Config()
    return load_config_file(path)


def load_config_file(path: Path) -> Config:
    raw = read_yaml_file(path, "config file")
    if raw is None:
        raw = {}
    try:
        config = parse_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return dataclasses.replace(config, config_file=path)


def read_text_file(path: Path, what: str, error: type[Exception]) -> str:
    """The UTF-8 text of ``path``, or ``error`` with one line naming the file and what is wrong (``what`` names the
    kind of file: "config file", "event calendar")."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None


def read_yaml_file(path: Path, what: str) -> Any:
    """The parsed YAML document of ``path`` (``what`` names the kind of file in the errors: one line naming the file
    and, for bad YAML, the line)."""
    import yaml

    text = read_text_file(path, what, ConfigError)
    try:
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where} {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a {what}") from None


def _yaml_loader() -> type:
    """PyYAML's safe loader with YAML 1.2 numbers. YAML 1.1 reads an unquoted `07:30` as the base-60 integer 450,
    `0630` as the octal 408 and `1_000` as 1000; here the first two stay strings (a time is parsed, or rejected,
    as written) and a number is what it looks like."""
    import re

    import yaml

    int_tag, float_tag = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
    timestamp_tag = "tag:yaml.org,2002:timestamp"  # a date stays the text written (events.extra parses it)

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (int_tag, float_tag, timestamp_tag)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(int_tag, re.compile(r"^[-+]?(0|[1-9][0-9]*)$"), list("-+0123456789"))
    Loader.add_implicit_resolver(
        float_tag,
        re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"
                   r"|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"),
        list("-+0123456789."),
    )
    return Loader


def parse_config(raw: Any) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError("top level must be a mapping of settings")
    config = _build(Config, raw, "")
    check_consistency(config)
    return config


def _build(cls: type, raw: Any, path: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'config'}: must be a mapping, got {_type_name(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "config_file"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields:
            hint = FOREIGN_SETTINGS.get(str(key))
            if hint:
                raise ConfigError(f"{key_path}: not a spreadwatch setting; {hint}")
            raise ConfigError(f"{key_path}: unknown key (known: {', '.join(fields)})")
        values[key] = _convert(hints[key], value, key_path, str(key))
    missing = [name for name, f in fields.items() if name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)} (an entry here gives all of "
                          f"{', '.join(fields)})")
    return cls(**values)


def _convert(hint: Any, value: Any, path: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        non_none = [a for a in args if a is not type(None)]
        if value is None:
            return None
        return _convert(non_none[0], value, path, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)  # type: ignore[arg-type]  # a dataclass type here: `hint` is a type hint
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: must be a mapping, got {_type_name(value)}")
        key_type, value_type = args
        return {str(k): _convert(value_type, v, f"{path}.{k}", str(k)) for k, v in value.items()}
    if origin is tuple:
        if isinstance(value, str | int | float):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: must be a list, got {_type_name(value)}")
        item_type = args[0]
        return tuple(_convert(item_type, v, f"{path}[{i}]", key) for i, v in enumerate(value))
    return _convert_scalar(hint, value, path, key)


def _convert_scalar(hint: Any, value: Any, path: str, key: str) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: must be a whole number, got {value!r}")
        return _bounded(value, path, key)
    if hint is float:
        return _bounded(_convert_float(value, path, key), path, key)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: must be a string, got {_type_name(value)}")
        return value
    if hint is time:
        return _parse_hhmm(value, path)
    raise ConfigError(f"{path}: unsupported setting type")  # pragma: no cover - schema bug


def _bounded(value: Any, path: str, key: str) -> Any:
    """A number within the bound of its kind (domain/values.py), by the unit its name carries: `_seconds` and
    `_minutes` are durations, `_sessions` and `_dte` counts of sessions, anything else within MAX_NUMBER."""
    from spreadwatch.domain import values

    try:
        if key.endswith("_seconds"):
            values.duration(value, allow_zero=True)
        elif key.endswith("_minutes"):
            values.duration(value * 60, allow_zero=True)
        elif key.endswith(("_sessions", "_dte")):
            values.count(value, minimum=min(value, 0), maximum=values.MAX_SESSIONS)
        elif abs(value) > values.MAX_NUMBER:
            raise values.ValueRefused(f"{value:g} is beyond the largest accepted ({values.MAX_NUMBER:g})")
    except values.ValueRefused as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return value


def _convert_float(value: Any, path: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}: must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{path}: must be a finite number, got {value!r}")
    if key in RATIO_KEYS and value > 1:
        raise ConfigError(f"{path}: must be a fraction; {value} looks like a percent, write {value / 100:g}")
    return float(value)


def _parse_hhmm(value: Any, path: str) -> time:
    # A number is never a time: 630 or 0630 might mean 06:30 or 10:30 (minutes), so it is refused, not guessed.
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            hours, minutes = int(parts[0]), int(parts[1])
            if 0 <= hours < 24 and 0 <= minutes < 60:
                return time(hours, minutes)
    raise ConfigError(f"{path}: must be a time HH:MM, got {value!r}")


def _type_name(value: Any) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), repr(value))


# --------------------------------------------------------------------------------------------------------------
# Consistency


def check_consistency(config: Config) -> None:
    """The second pass: values that are well-typed but make no sense together."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(config.display_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"display_timezone: unknown time zone {config.display_timezone!r}") from None
    for name, value in dataclasses.asdict(config.intervals).items():
        if value <= 0:
            raise ConfigError(f"intervals.{name}: must be > 0")
    for check in (_check_market, _check_hours, _check_scan, _check_exits, _check_marks, _check_risk, _check_regime,
                  _check_tickers, _check_logging, _check_events, _check_digest):
        check(config)


def _check_market(config: Config) -> None:
    m = config.market
    if m.calendar != "XNYS":
        raise ConfigError(f"market.calendar: only XNYS is supported, got {m.calendar!r}")
    if m.trend not in TREND_CHOICES:
        raise ConfigError(f"market.trend: must be one of {', '.join(TREND_CHOICES)}, got {m.trend!r}")
    for name in ("stale_after_seconds", "band_window_sessions", "iv_window_sessions", "volume_window_sessions",
                 "flow_0dte_minutes"):
        if getattr(m, name) <= 0:
            raise ConfigError(f"market.{name}: must be > 0")
    for name in ("flow_dead_band", "flow_0dte_dead_band"):
        if not 0 <= getattr(m, name) < 0.1:
            raise ConfigError(f"market.{name}: must be a fraction in [0, 0.1)")


def _check_hours(config: Config) -> None:
    h = config.hours
    if h.trading_start >= h.trading_end:
        raise ConfigError("hours.trading_start: must be before hours.trading_end")
    if h.entry_start > h.entry_end:
        raise ConfigError("hours.entry_start: must not be after hours.entry_end")
    if h.entry_tolerance_minutes < 0:
        raise ConfigError("hours.entry_tolerance_minutes: must be >= 0")


def _check_scan(config: Config) -> None:
    s = config.scan
    if s.top_n < 1:
        raise ConfigError("scan.top_n: must be >= 1")
    if not 1 <= s.notify_top <= 10:
        raise ConfigError("scan.notify_top: must be between 1 and 10 (the setups one notification lists)")
    for name in ("min_win_rate", "min_roi"):
        if not 0 <= getattr(s, name) <= 1:
            raise ConfigError(f"scan.{name}: must be a fraction between 0 and 1")
    if s.min_trades < 0:
        raise ConfigError("scan.min_trades: must be >= 0")
    if s.win_rate_basis not in WIN_RATE_BASES:
        raise ConfigError(f"scan.win_rate_basis: must be one of {', '.join(WIN_RATE_BASES)}, "
                          f"got {s.win_rate_basis!r}")
    for name, value in dataclasses.asdict(config.grid_build).items():
        if value < 0:
            raise ConfigError(f"grid_build.{name}: must be >= 0 (dollars per contract per leg)")


def _check_exits(config: Config) -> None:
    e = config.exits
    if not 0 < e.profit_target_pct <= 1:
        raise ConfigError("exits.profit_target_pct: must be a fraction in (0, 1]")
    if e.stop_loss_mult <= 0:
        raise ConfigError("exits.stop_loss_mult: must be > 0")
    if e.time_exit_dte < 0:
        raise ConfigError("exits.time_exit_dte: must be >= 0")
    if e.pnl_stale_after_minutes <= 0:
        raise ConfigError("exits.pnl_stale_after_minutes: must be > 0")
    _check_pnl_sources(e.pnl_sources)
    if e.short_strike_near_expected_moves <= 0:
        raise ConfigError("exits.short_strike_near_expected_moves: must be > 0")
    if e.short_strike_clear_expected_moves <= e.short_strike_near_expected_moves:
        raise ConfigError("exits.short_strike_clear_expected_moves: must be above "
                          "exits.short_strike_near_expected_moves (the hold band of SpreadwatchShortStrikeNear)")


def _check_pnl_sources(sources: tuple[str, ...]) -> None:
    from spreadwatch.domain.positions import PNL_SOURCES

    if not sources:
        raise ConfigError(f"exits.pnl_sources: must list at least one of {', '.join(PNL_SOURCES)}")
    for i, source in enumerate(sources):
        if source not in PNL_SOURCES:
            raise ConfigError(f"exits.pnl_sources[{i}]: must be one of {', '.join(PNL_SOURCES)}, got {source!r}")
        if source in sources[:i]:
            raise ConfigError(f"exits.pnl_sources[{i}]: {source!r} is listed twice")


def _check_marks(config: Config) -> None:
    m = config.marks
    if m.chain_interval_seconds < 60:
        raise ConfigError("marks.chain_interval_seconds: must be >= 60 (a chain is two requests; be gentle)")
    if m.chain_delay_minutes < 0:
        raise ConfigError("marks.chain_delay_minutes: must be >= 0")


def _check_risk(config: Config) -> None:
    r = config.risk
    if r.max_positions < 1:
        raise ConfigError("risk.max_positions: must be >= 1")
    if r.max_total_risk <= 0:
        raise ConfigError("risk.max_total_risk: must be > 0")


def _check_regime(config: Config) -> None:
    g = config.regime
    expected = list(REGIMES[1:])
    if set(g.boundaries) != set(expected):
        raise ConfigError(f"regime.boundaries: must give exactly {', '.join(expected)}")
    bounds = [g.boundaries[name] for name in expected]
    if any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)) or bounds[0] <= 0:
        raise ConfigError("regime.boundaries: must be positive and increasing from low to extreme")
    if not 0 <= g.hysteresis < min(b - a for a, b in zip(bounds, bounds[1:], strict=False)) / 2:
        raise ConfigError("regime.hysteresis: must be >= 0 and less than half the narrowest regime")
    for regime_name, rec in g.recommendations.items():
        where = f"regime.recommendations.{regime_name}"
        if regime_name not in REGIMES:
            raise ConfigError(f"{where}: unknown regime (known: {', '.join(REGIMES)})")
        _check_members(f"{where}.spread_types", rec.spread_types, SPREAD_TYPES)
        _check_members(f"{where}.bands", rec.bands, tuple(BANDS))
        _check_members(f"{where}.flow_modes", rec.flow_modes, FLOW_MODES)
        if any(d < 0 for d in rec.dtes):
            raise ConfigError(f"{where}.dtes: must be >= 0")
    missing = [name for name in REGIMES if name not in g.recommendations]
    if missing:
        raise ConfigError(f"regime.recommendations: missing {', '.join(missing)}")
    for trend, spreads in g.trend_spreads.items():
        if trend not in TRENDS or trend == "sideways":
            raise ConfigError(f"regime.trend_spreads.{trend}: only up and down can override the regime's list")
        _check_members(f"regime.trend_spreads.{trend}", spreads, SPREAD_TYPES)


def _check_tickers(config: Config) -> None:
    if not config.watch:
        raise ConfigError("watch: must name at least one ticker")
    for i, name in enumerate(config.watch):
        if name not in config.tickers:
            raise ConfigError(f"watch[{i}]: ticker {name!r} is not in tickers")
    for name, ticker in config.tickers.items():
        if ticker.strike_increment <= 0:
            raise ConfigError(f"tickers.{name}.strike_increment: must be > 0")


def _check_logging(config: Config) -> None:
    if config.logging.file_max_bytes <= 0:
        raise ConfigError("logging.file_max_bytes: must be > 0")
    if config.logging.file_backups < 0:
        raise ConfigError("logging.file_backups: must be >= 0")
    if config.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("logging.level: must be DEBUG, INFO, WARNING or ERROR")


def _check_events(config: Config) -> None:
    from spreadwatch.domain.events import EVENT_KINDS, POLICIES

    e = config.events
    for kind, policy in e.policy.items():
        if kind not in EVENT_KINDS:
            raise ConfigError(f"events.policy.{kind}: unknown event kind (known: {', '.join(EVENT_KINDS)})")
        if policy not in POLICIES:
            raise ConfigError(f"events.policy.{kind}: must be one of {', '.join(POLICIES)}, got {policy!r}")
    for kind, days in e.extra.items():
        if kind not in EVENT_KINDS:
            raise ConfigError(f"events.extra.{kind}: unknown event kind (known: {', '.join(EVENT_KINDS)})")
        for i, text in enumerate(days):
            try:
                date.fromisoformat(text)
            except ValueError:
                raise ConfigError(f"events.extra.{kind}[{i}]: must be a date YYYY-MM-DD, got {text!r}") from None


def _check_digest(config: Config) -> None:
    d = config.digest
    if not 0 <= d.brief_minutes_before_open <= 720:
        raise ConfigError("digest.brief_minutes_before_open: must be between 0 and 720")
    if not 0 <= d.summary_minutes_after_close <= 480:
        raise ConfigError("digest.summary_minutes_after_close: must be between 0 and 480")
    if not 1 <= d.window_minutes <= 240:
        raise ConfigError("digest.window_minutes: must be between 1 and 240")


def _check_members(path: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    if not values:
        raise ConfigError(f"{path}: must not be empty")
    for value in values:
        if value not in allowed:
            raise ConfigError(f"{path}: unknown value {value!r} (allowed: {', '.join(allowed)})")


# --------------------------------------------------------------------------------------------------------------
# Showing


def to_plain(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data (what `config check` prints)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "config_file"}
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, time):
            return value.strftime("%H:%M")
        return value

    return plain(config)


def bundled_path(name: str) -> Path:
    """A data file shipped inside the package (grid, replay sample)."""
    return Path(__file__).parent / "data" / name
