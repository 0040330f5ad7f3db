"""Positions the trader logged by hand: what one is, what makes one valid, and the exit and risk rules.

Pure domain code: values in, values out. No database, clock, calendar or printing here; edges/store.py persists
positions, app/book.py and the CLI talk to people, the exporter's loop and the CLI both call `exit_signals` so an
alert and an `update` say the same thing. Definitions (docs/positions.md): credit and risk are dollars for the whole
position; the risk is the strikes' risk, width x 100 x contracts - credit (an iron condor: its wider wing), and a
given risk that disagrees by more than $1 is refused (an imported one is kept and reported); profit target when
P&L >= profit_target_pct x credit; stop when P&L <= -stop_loss_mult x credit, both compared in whole cents; time
exit when 0 <= sessions to expiry <= time_exit_dte, except positions opened at or under that DTE, which get an
expiry-day reminder on the expiry session instead; an open position past its expiry session is expired (close it
in the book with its final P&L), said as "expired N session(s) ago", never as a negative count.
"""

from __future__ import annotations

from datetime import date, datetime

from spreadwatch.domain import values
from spreadwatch.domain.records import Record
from spreadwatch.domain.vocabulary import BANDS, FLOW_MODES, LEGS, SPREAD_TYPES, legs_for
from spreadwatch.errors import InputError, MalformedValue

TYPE_CHECKING = False  # typing and dataclasses cost start-up time `positions list` feels (domain/records.py)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

STATUSES: tuple[str, ...] = ("open", "closed")

# The JSON keys of `positions list --json`, in order (docs/positions.md, "JSON"); extra keys go after these.
JSON_KEYS: tuple[str, ...] = (
    "id", "ticker", "spread", "band", "flow_mode", "dte", "contracts", "entry_time", "expiry", "credit", "risk",
    "pnl", "status", "short_put", "long_put", "short_call", "long_call", "note", "pnl_updated_at", "closed_at",
)
SUMMARY_KEYS: tuple[str, ...] = (
    "total_count", "open_count", "closed_count", "total_risk", "unrealized_pnl", "realized_pnl", "total_pnl",
)


class Position(Record):
    id: str
    ticker: str
    spread: str
    band: str
    flow_mode: str
    dte: int
    contracts: int
    entry_time: datetime
    expiry: date
    credit: float
    risk: float
    pnl: float
    pnl_updated_at: datetime | None
    status: str
    short_put: float | None
    long_put: float | None
    short_call: float | None
    long_call: float | None
    note: str
    closed_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @property
    def strikes_risk(self) -> float:
        """The risk of the strikes: what the risk limits count (an imported position may store another value)."""
        return computed_risk(self.spread, {leg: getattr(self, leg) for leg in LEGS}, self.contracts, self.credit)

    def to_json(self) -> dict[str, Any]:
        plain = self.as_dict()
        for key in ("entry_time", "pnl_updated_at", "closed_at", "expiry"):
            value = plain[key]
            plain[key] = value.isoformat() if value is not None else None
        return {key: plain[key] for key in JSON_KEYS}


class PositionInput(Record):
    """What a trader types for `positions add` (or one record of an imported file), before validation."""

    ticker: str
    spread: str
    band: str
    flow_mode: str
    dte: int
    contracts: int
    credit: float
    risk: float | None
    short_put: float | None = None
    long_put: float | None = None
    short_call: float | None = None
    long_call: float | None = None
    note: str = ""


class ExitSignal(Record):
    reason: str  # profit_target | stop_loss | time_exit | expiry_day | expired
    detail: str  # the sentence an alert and the CLI print

    @property
    def label(self) -> str:
        return self.reason.replace("_", " ")


class Summary(Record):
    total_count: int
    open_count: int
    closed_count: int
    total_risk: float
    unrealized_pnl: float
    realized_pnl: float

    @property
    def total_pnl(self) -> float:
        return self.unrealized_pnl + self.realized_pnl

    def to_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in SUMMARY_KEYS}


# ---- validation ---------------------------------------------------------------------------------------------
def _flag(leg: str) -> str:
    return "--" + leg.replace("_", "-")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _finite(name: str, value: Any) -> float:
    """Dollars (any sign) within the book's bound; InputError naming `name`."""
    return _checked(name, values.money, value)


def _checked(name: str, check: Any, value: Any) -> Any:
    """`check(value)` (a domain/values.py validator); a value it refuses is malformed on its own."""
    try:
        return check(value)
    except values.ValueRefused as exc:
        raise MalformedValue(f"{name}: {exc}") from None


def checked_id(name: str, value: Any) -> str:
    """A position id (or the prefix of one): valid text of 1 to 64 letters, digits, `_`, `-` or `.`, the only ids a
    book holds; MalformedValue naming `name` otherwise."""
    text = _checked(name, values.text, value)
    if not text or len(text) > 64 or not set(text) <= _ID_CHARS:
        raise MalformedValue(f"{name}: {text!r} is not a usable id (letters, digits, _ - . only)")
    return text  # type: ignore[no-any-return]


def spread_width(spread: str, legs: dict[str, float | None]) -> float:
    """Strike distance that bounds the loss: the wider side of an iron condor (only one side can lose)."""
    widths = []
    if spread in ("put_spread", "iron_condor"):
        widths.append(float(legs["short_put"]) - float(legs["long_put"]))  # type: ignore[arg-type]
    if spread in ("call_spread", "iron_condor"):
        widths.append(float(legs["long_call"]) - float(legs["short_call"]))  # type: ignore[arg-type]
    return max(widths)


def computed_risk(spread: str, legs: dict[str, float | None], contracts: int, credit: float) -> float:
    """Max loss of the whole position: width x 100 x contracts - credit."""
    return spread_width(spread, legs) * 100 * contracts - credit


RISK_TOLERANCE_DOLLARS = 1.0  # a given risk may differ from the strikes' risk by rounding, never by more


def validate(entry: PositionInput, *, tickers: Iterable[str], keep_given_risk: bool = False
             ) -> tuple[PositionInput, list[str]]:
    """Check every rule of a new position. Returns the input with risk filled in (computed when omitted) and the
    warnings to show. A given risk more than $1 away from width x 100 x contracts - credit is refused, or, with
    `keep_given_risk` (an import of the original's file), kept and reported in the warnings. Raises InputError
    naming the first problem."""
    _check_terms(entry, tuple(tickers))
    credit = _finite("--credit", entry.credit)
    if credit <= 0:
        raise MalformedValue(f"--credit: must be > 0 (dollars received for the whole position), got {entry.credit:g}")
    legs = _checked_legs(entry)
    max_credit = spread_width(entry.spread, legs) * 100 * entry.contracts
    if credit >= max_credit:
        raise InputError(f"--credit: {credit:,.2f} must be below the spread's width x 100 x contracts "
                         f"({max_credit:,.2f}); credit and risk are dollars for the whole position")
    expected = max_credit - credit
    warnings: list[str] = []
    risk = expected if entry.risk is None else _given_risk(entry.risk, expected, keep_given_risk, warnings)
    return PositionInput(
        ticker=entry.ticker, spread=entry.spread, band=entry.band, flow_mode=entry.flow_mode, dte=entry.dte,
        contracts=entry.contracts, credit=credit, risk=risk, note=entry.note or "", **legs,
    ), warnings


def _given_risk(value: Any, expected: float, keep: bool, warnings: list[str]) -> float:
    risk = _finite("--risk", value)
    if risk <= 0:
        raise MalformedValue(f"--risk: must be > 0 (max loss in dollars for the whole position), got {value:g}")
    if abs(risk - expected) <= RISK_TOLERANCE_DOLLARS:
        return risk
    text = (f"--risk {money(risk, sign=False)} disagrees with the strikes: width x 100 x contracts - credit = "
            f"{money(expected, sign=False)}")
    if not keep:
        raise InputError(f"{text}; leave --risk out to store the computed value")
    warnings.append(f"{text}; kept as imported, risk limits count {money(expected, sign=False)}")
    return risk


def risk_disagreement(entry: PositionInput) -> str | None:
    """For an imported record: how its risk disagrees with its strikes' risk, or None when it agrees (within $1)."""
    legs = {leg: getattr(entry, leg) for leg in LEGS}
    expected = computed_risk(entry.spread, legs, entry.contracts, entry.credit)
    if entry.risk is None or abs(entry.risk - expected) <= RISK_TOLERANCE_DOLLARS:
        return None
    return (f"risk {money(entry.risk, sign=False)} disagrees with the strikes' {money(expected, sign=False)} "
            f"(width x 100 x contracts - credit); kept as imported, risk limits count "
            f"{money(expected, sign=False)}")


def _check_terms(entry: PositionInput, known: tuple[str, ...]) -> None:
    """Ticker (one of the config's: refused as InputError), spread type, band, flow mode, DTE and contracts (not
    values of their kind: MalformedValue)."""
    if entry.ticker not in known:
        raise InputError(f"--ticker: unknown ticker {entry.ticker!r} (configured: {', '.join(known)})")
    if entry.spread not in SPREAD_TYPES:
        raise MalformedValue(f"--spread: unknown spread {entry.spread!r} (one of {', '.join(SPREAD_TYPES)})")
    if entry.band not in BANDS:
        raise MalformedValue(f"--band: unknown band {entry.band!r} (one of {', '.join(BANDS)})")
    if entry.flow_mode not in FLOW_MODES:
        raise MalformedValue(f"--flow-mode: unknown flow mode {entry.flow_mode!r} (one of {', '.join(FLOW_MODES)})")
    if isinstance(entry.dte, bool) or not isinstance(entry.dte, int) or entry.dte < 0:
        raise MalformedValue(f"--dte: must be a whole number >= 0, got {entry.dte!r}")
    _checked("--dte", values.sessions, entry.dte)
    if isinstance(entry.contracts, bool) or not isinstance(entry.contracts, int) or entry.contracts < 1:
        raise MalformedValue(f"--contracts: must be a whole number >= 1, got {entry.contracts!r}")
    _checked("--contracts", values.contracts, entry.contracts)
    _checked("--note", values.text, entry.note or "")


def _checked_legs(entry: PositionInput) -> dict[str, float | None]:
    """The strikes of the legs the spread type needs (each > 0, in order), None for the others (which must not
    be given)."""
    needed = legs_for(entry.spread)
    legs: dict[str, float | None] = {}
    for leg in LEGS:
        value = getattr(entry, leg)
        if leg not in needed:
            if value is not None:
                raise InputError(f"{_flag(leg)}: does not apply to {_article(entry.spread)} {entry.spread} (it has {', '.join(_flag(n) for n in needed)})")
            legs[leg] = None
            continue
        if value is None:
            raise InputError(f"{_flag(leg)}: required for {_article(entry.spread)} {entry.spread}")
        strike = _checked(_flag(leg), values.price, value)
        legs[leg] = strike
    order = [leg for leg in ("long_put", "short_put", "short_call", "long_call") if legs[leg] is not None]
    for lower, upper in zip(order, order[1:], strict=False):
        if not legs[lower] < legs[upper]:  # type: ignore[operator]  # both set: `order` keeps given legs only
            raise InputError(f"strikes out of order: {_flag(lower)} {legs[lower]:g} must be below "
                             f"{_flag(upper)} {legs[upper]:g} (long put < short put < short call < long call)")
    return legs


def validate_pnl(value: Any) -> float:
    return _finite("--pnl", value)


# ---- rules --------------------------------------------------------------------------------------------------
def exit_thresholds(position: Position, exits: Any) -> tuple[float, float]:
    """(profit target, stop) in dollars for the whole position, rounded to the cent: profit_target_pct x credit and
    -stop_loss_mult x credit (negative). The alerts compare the P&L with these."""
    return (exit_threshold(exits.profit_target_pct * position.credit),
            exit_threshold(-exits.stop_loss_mult * position.credit))


# ---- the P&L the exit rules evaluate ---------------------------------------------------------------------------

# Where a P&L comes from: the trader's last logged one, a delayed option chain's mid prices, the pricing model.
PNL_SOURCES: tuple[str, ...] = ("logged", "market", "model")


class PnlReading(Record):
    """A P&L of a whole position from one source, and the instant it describes (the logged P&L: when it was
    logged; a mark: the stamp of the oldest market value it was computed from). None: an instant not known."""

    source: str  # one of PNL_SOURCES
    pnl: float
    as_of: datetime | None
    vol_index: float | None = None  # the vol index level a model mark used
    vol_symbol: str = ""  # its name as people say it (VIX, VXN)


def exit_pnl(order: tuple[str, ...], readings: dict[str, PnlReading], now: datetime,
             logged_fresh_seconds: float) -> PnlReading | None:
    """The P&L the profit target and the stop evaluate: the first source in `order` that has a current reading.

    A mark is current whenever it exists (it is computed only from market data that is still knowledge); the logged
    P&L is current while younger than `logged_fresh_seconds`. When none is current, the logged P&L if `order`
    lists it (the trader's word, however old, as when it is the only source), else None: an order without
    "logged" gives no exit P&L until a mark is current."""
    for source in order:
        reading = readings.get(source)
        if reading is None:
            continue
        if source != "logged":
            return reading
        if reading.as_of is not None and (now - reading.as_of).total_seconds() < logged_fresh_seconds:
            return reading
    return readings.get("logged") if "logged" in order else None


def pnl_basis(reading: PnlReading, now: datetime) -> str:
    """How a P&L reading reads to people, beside the amount: "(logged 12m ago)", "(estimated from the model, VIX
    18.2, data 45s old)", "(market mark, 15m old)"."""
    age = "" if reading.as_of is None else age_text(max(0.0, (now - reading.as_of).total_seconds()))
    if reading.source == "logged":
        return f"(logged {age} ago)" if age else "(logged)"
    if reading.source == "model":
        vol = "" if reading.vol_index is None else f", {reading.vol_symbol} {reading.vol_index:.1f}"
        return f"(estimated from the model{vol}{', data ' + age + ' old' if age else ''})"
    return f"(market mark{', ' + age + ' old' if age else ''})"


def age_text(seconds: float) -> str:
    """A short age: 45s, 12m, 3h 05m, 2d 4h."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def exit_signals(position: Position, sessions_to_expiry: int | None, exits: Any,
                 reading: PnlReading | None = None, now: datetime | None = None) -> list[ExitSignal]:
    """Each exit rule an open position meets, with the threshold: the same rules for alerts, the loop's event log
    and `positions update/close`. `sessions_to_expiry` is None when the calendar cannot say. The profit target and
    the stop evaluate `reading` (the exit P&L, `exit_pnl`) when given, said with its source and age at `now`,
    else the logged P&L."""
    p = position
    out = []
    target, stop = exit_thresholds(p, exits)
    value = p.pnl if reading is None else reading.pnl
    pct = value / p.credit * 100 if p.credit else 0.0
    basis = "" if reading is None or now is None else f" {pnl_basis(reading, now)}"
    pnl = cents(value)
    if pnl >= cents(target):
        out.append(ExitSignal("profit_target", f"Profit target hit | P&L: ${value:,.2f} ({pct:+.1f}%){basis} >= "
                                               f"${target:,.2f} ({exits.profit_target_pct:.0%} of credit)"))
    if pnl <= cents(stop):
        out.append(ExitSignal("stop_loss", f"Stop loss hit | P&L: ${value:,.2f} ({pct:+.1f}%){basis} <= "
                                           f"${stop:,.2f} ({exits.stop_loss_mult:g}x credit)"))
    if sessions_to_expiry is not None and sessions_to_expiry < 0:
        out.append(ExitSignal("expired", f"Expired: {expired_text(p.expiry, sessions_to_expiry)}; close it in the "
                                         f"book with its final P&L"))
    elif sessions_to_expiry is not None:
        if p.dte > exits.time_exit_dte and sessions_to_expiry <= exits.time_exit_dte:
            out.append(ExitSignal("time_exit", f"Time exit: {sessions_to_expiry} session(s) to expiry <= "
                                               f"{exits.time_exit_dte}"))
        elif p.dte <= exits.time_exit_dte and sessions_to_expiry == 0:
            out.append(ExitSignal("expiry_day", "Expiry day: the position expires today"))
    return out


def expired_text(expiry: date, sessions_to_expiry: int) -> str:
    """How an open position past its expiry reads to people: "expired 2 session(s) ago (2026-11-25)", never a
    negative count (the metric may be negative; see edges/calendar.py `sessions_to_expiry`)."""
    return f"expired {-sessions_to_expiry} session(s) ago ({expiry.isoformat()})"


def exit_line(position_id: str, signal: ExitSignal) -> str:
    """The one wording of a met exit rule, as the event log and `positions update/close/status` print it."""
    return f"EXIT SIGNAL - Position {position_id} | Reason: {signal.detail}"


def cents(dollars: float) -> int:
    """Money as whole cents, the unit exit thresholds are compared in (0.4 x 285 is 114.00000000000001 in floating
    point, and a P&L of exactly $114 must meet it)."""
    return int(round(dollars * 100))


def exit_threshold(dollars: float) -> float:
    """A profit target or stop in dollars, rounded to the cent (what the exporter exports and the rules compare)."""
    return cents(dollars) / 100


def limit_warnings(open_positions: Iterable[Position], new_risk: float, risk_limits: Any) -> list[str]:
    """What adding a position of `new_risk` would break (max_positions, max_total_risk), counting each open
    position's strikes' risk."""
    held = list(open_positions)
    count = len(held) + 1
    total = sum(p.strikes_risk for p in held) + new_risk
    out = []
    if count > risk_limits.max_positions:
        out.append(f"warning: {count} open positions would exceed risk.max_positions {risk_limits.max_positions}")
    if total > risk_limits.max_total_risk:
        out.append(f"warning: capital at risk {money(total, sign=False)} would exceed risk.max_total_risk "
                   f"{money(risk_limits.max_total_risk, sign=False)}")
    return out


def summarize(positions: Iterable[Position], *, closed_count: int = 0, realized_pnl: float = 0.0) -> Summary:
    """The book's sums. Closed positions not among `positions` may be given as their count and the sum of their P&L
    (what the exporter keeps of them instead of re-reading them every cycle)."""
    total = closed_count
    open_count = 0
    risk = unrealized = 0.0
    realized = realized_pnl
    for p in positions:
        total += 1
        if p.is_open:
            open_count += 1
            risk += p.strikes_risk
            unrealized += p.pnl
        else:
            realized += p.pnl
    return Summary(total, open_count, total - open_count, risk, unrealized, realized)


# ---- presentation helpers (no I/O) ----------------------------------------------------------------------------
def money(value: float, *, sign: bool = True) -> str:
    """Dollars as the original shows them: `+$2,055.00`, `-$600.00`; `$5,145.00` without sign."""
    text = f"${abs(value):,.2f}"
    if not sign:
        return f"-{text}" if value < 0 else text
    return f"-{text}" if value < 0 else f"+{text}"


def strikes_text(position: Position) -> str:
    parts = []
    if position.short_put is not None:
        parts.append(f"{position.long_put:g}/{position.short_put:g}P")
    if position.short_call is not None:
        parts.append(f"{position.short_call:g}/{position.long_call:g}C")
    return " ".join(parts)


# ---- the original system's positions.json ----------------------------------------------------------------------
# Keys of one record in the original file, and the names this system uses for them. Anything else is an error
# (a typo must not silently drop a field).
IMPORT_ALIASES: dict[str, str] = {
    "id": "id", "position_id": "id",
    "ticker": "ticker", "symbol": "ticker",
    "spread": "spread", "spread_type": "spread",
    "band": "band", "flow_mode": "flow_mode", "dte": "dte", "contracts": "contracts",
    "credit": "credit", "entry_credit": "credit",
    "risk": "risk", "max_risk": "risk",
    "short_put": "short_put", "long_put": "long_put", "short_call": "short_call", "long_call": "long_call",
    "entry_time": "entry_time", "entry_date": "entry_time", "timestamp": "entry_time",
    "expiry": "expiry", "expiration": "expiry", "expiration_date": "expiry", "expiry_date": "expiry",
    "status": "status",
    "pnl": "pnl", "current_pnl": "pnl", "exit_pnl": "pnl", "realized_pnl": "pnl",
    "note": "note", "notes": "note",
    "closed_at": "closed_at", "exit_time": "closed_at", "close_time": "closed_at",
    "pnl_updated_at": "pnl_updated_at", "last_update": "pnl_updated_at", "last_updated": "pnl_updated_at",
    "updated_at": "pnl_updated_at",
}
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def parse_original(data: Any, *, tickers: Iterable[str], local_tz: Any, expiry_for: Any,
                   is_session: Any, now: datetime | None = None) -> list[tuple[str | None, PositionInput, dict[str, Any]]]:
    """The records of the original system's positions.json (a list, `{"positions": [...]}` or `{id: record}`),
    each validated as `positions add` would be. Naive times are in `local_tz` (the original wrote local time).
    `expiry_for(entry_time, dte)` computes a missing expiry on the calendar. Raises InputError naming the
    record and the field; returns nothing half-checked."""
    if isinstance(data, dict) and "positions" in data and len(data) <= 2:
        data = data["positions"]
    if isinstance(data, dict):
        data = [{"id": key, **value} if isinstance(value, dict) else value for key, value in data.items()]
    if not isinstance(data, list):
        raise InputError("expected a list of positions (or {\"positions\": [...]})")
    known = tuple(tickers)
    out: list[tuple[str | None, PositionInput, dict[str, Any]]] = []
    seen: set[str] = set()
    for index, raw in enumerate(data):
        where = f"positions[{index}]"
        if not isinstance(raw, dict):
            raise InputError(f"{where}: expected an object, got {type(raw).__name__}")
        record: dict[str, Any] = {}
        for key, value in raw.items():
            name = IMPORT_ALIASES.get(str(key))
            if name is None:
                raise InputError(f"{where}.{key}: unknown key")
            if name in record and record[name] is not None and value is not None and record[name] != value:
                raise InputError(f"{where}.{key}: conflicts with another key for {name}")
            if value is not None or name not in record:
                record[name] = value
        try:
            parsed = _parse_record(record, known, local_tz, expiry_for, is_session, seen, now)
            if now is not None:
                check_record_times(parsed[2], now)
            out.append(parsed)
        except InputError as exc:
            ident = f" (id {record.get('id')})" if record.get("id") is not None else ""
            raise InputError(f"{where}{ident}: {str(exc).removeprefix('--')}") from None
    return out


class _Record:
    """One record of the original's file, read field by field (InputError naming the field)."""

    def __init__(self, record: dict[str, Any], local_tz: Any) -> None:
        self.record = record
        self.local_tz = local_tz

    def whole(self, key: str) -> int:
        value = self.record[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise InputError(f"{key}: {value!r} is not a whole number")
        return int(value)

    def number(self, key: str) -> float | None:
        value = self.record.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InputError(f"{key}: {value!r} is not a number")
        return _checked(key, values.number, value)  # type: ignore[no-any-return]  # its kind: validate()

    def stamp(self, key: str) -> datetime | None:
        """An ISO 8601 time; a naive one is in the original's local zone."""
        value = self.record.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InputError(f"{key}: {value!r} is not an ISO 8601 time")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{key}: {value!r} is not an ISO 8601 time") from None
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=self.local_tz)
        return _checked(key, values.instant, parsed)  # type: ignore[no-any-return]

    def expiry(self, entry_time: datetime, dte: int, expiry_for: Any, is_session: Any) -> date:
        if self.record.get("expiry") is None:
            return expiry_for(entry_time, dte)
        try:
            expiry = date.fromisoformat(str(self.record["expiry"])[:10])
        except ValueError:
            raise InputError(f"expiry: {self.record['expiry']!r} is not a date (YYYY-MM-DD)") from None
        _checked("expiry", values.day, expiry)
        if not is_session(expiry):
            raise InputError(f"expiry: {expiry} is not a trading session")
        return expiry

    def wanted_id(self, seen: set[str]) -> str | None:
        wanted = self.record.get("id")
        if wanted is None:
            return None
        wanted = checked_id("id", str(wanted))
        if wanted in seen:
            raise InputError(f"id: {wanted!r} appears twice")
        seen.add(wanted)
        return wanted


def check_record_times(state: dict[str, Any], now: datetime) -> None:
    """The checks `positions add` and `close` make of times, for one imported record: the entry not in the future,
    the expiry not before the entry, a close and a P&L update neither before the entry nor in the future."""
    entry_time: datetime = state["entry_time"]
    if entry_time > now:
        raise InputError(f"entry_time: {entry_time.isoformat()} is in the future")
    if state["expiry"] < entry_time.date():
        raise InputError(f"expiry: {state['expiry']} is before the entry {entry_time.date()}")
    for key in ("closed_at", "pnl_updated_at"):
        stamp = state.get(key)
        if stamp is None:
            continue
        if stamp < entry_time:
            raise InputError(f"{key}: {stamp.isoformat()} is before the entry {entry_time.isoformat()}")
        if stamp > now:
            raise InputError(f"{key}: {stamp.isoformat()} is in the future")


def _parse_record(record: dict[str, Any], tickers: tuple[str, ...], local_tz: Any, expiry_for: Any,
                  is_session: Any, seen: set[str],
                  now: datetime | None = None) -> tuple[str | None, PositionInput, dict[str, Any]]:
    for key in ("spread", "band", "dte", "contracts", "credit", "entry_time"):
        if record.get(key) is None:
            raise InputError(f"{key}: missing")
    r = _Record(record, local_tz)
    entry = PositionInput(
        ticker=str(record.get("ticker") or tickers[0]), spread=str(record["spread"]).lower(),
        band=str(record["band"]).upper(), flow_mode=str(record.get("flow_mode") or "neutral"), dte=r.whole("dte"),
        contracts=r.whole("contracts"), credit=r.number("credit"), risk=r.number("risk"),  # type: ignore[arg-type]
        note=str(record.get("note") or ""),
        **{leg: r.number(leg) for leg in LEGS},
    )
    entry, _ = validate(entry, tickers=tickers, keep_given_risk=True)  # a disagreeing risk: risk_disagreement
    status = str(record.get("status") or "open").lower()
    if status not in STATUSES:
        raise InputError(f"status: {record.get('status')!r} is not open or closed")
    entry_time = r.stamp("entry_time")
    assert entry_time is not None  # required above
    if now is not None and entry_time > now:  # before the expiry is computed from it
        raise InputError(f"entry_time: {entry_time.isoformat()} is in the future")
    expiry = r.expiry(entry_time, entry.dte, expiry_for, is_session)
    pnl = validate_pnl(r.number("pnl") or 0.0)
    closed_at = r.stamp("closed_at")
    if status == "closed" and closed_at is None:
        closed_at = r.stamp("pnl_updated_at") or entry_time
    wanted = r.wanted_id(seen)
    state = {"entry_time": entry_time, "expiry": expiry, "pnl": pnl, "status": status,
             "pnl_updated_at": r.stamp("pnl_updated_at") or closed_at or entry_time,
             "closed_at": closed_at if status == "closed" else None}
    return wanted, entry, state
