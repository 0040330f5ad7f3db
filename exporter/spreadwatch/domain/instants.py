"""ISO 8601 instants: the one parser (a zone is required: naive input is refused, never guessed) and the one way an
instant is written (UTC with a `Z`). Pure; callers turn a refusal into their own one-line error."""

from __future__ import annotations

from datetime import UTC, datetime


class InstantError(ValueError):
    """Text that is not an ISO 8601 instant with a zone; `naive` when only the zone is missing."""

    def __init__(self, text: str, naive: bool) -> None:
        super().__init__(text)
        self.text = text
        self.naive = naive


def parse_instant(text: str) -> datetime:
    """`2026-11-27T15:10:00Z`, `2026-11-27T10:10:00-05:00`... as an aware UTC datetime."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise InstantError(text, naive=False) from None
    if value.tzinfo is None:
        raise InstantError(text, naive=True)
    return value.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """An instant as written in JSON and logs: UTC, `Z`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
