"""Time: an injectable clock and local (Europe/London) wall-clock helpers.

Opening hours and time-of-day rules are written in local time, as people say them ("08:00 to
20:00"). They are compared by converting the instant (always stored in UTC) to Europe/London,
so 08:00 means 07:00 UTC in summer and 08:00 UTC in winter, and the clocks going back or
forward never shifts a rule by an hour."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday keys, Monday first (``datetime.weekday()`` order)."""

_HHMM = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")


class Clock(Protocol):
    """Where the current time comes from; tests pass one they move by hand."""

    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def local(at: datetime) -> datetime:
    """``at`` (aware; naive is taken as UTC) as Europe/London wall-clock time."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(LONDON)


def local_day(at: datetime) -> date:
    """The Europe/London calendar day ``at`` falls on (capacity is counted per local day)."""
    return local(at).date()


def minute_of_day(at: datetime) -> int:
    """Minutes since local midnight."""
    wall = local(at)
    return wall.hour * 60 + wall.minute


def weekday(at: datetime) -> str:
    """Local weekday key of ``at`` ("mon" … "sun")."""
    return DAYS[local(at).weekday()]


def parse_hhmm(text: str) -> int | None:
    """Minutes since midnight of "HH:MM" (00:00–24:00); None if it is not that shape."""
    match = _HHMM.fullmatch(text)
    if not match:
        return None
    minutes = int(match[1]) * 60 + int(match[2])
    return minutes if minutes <= 24 * 60 else None


def hhmm(minutes: int) -> str:
    """Minutes since midnight as "HH:MM"."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
