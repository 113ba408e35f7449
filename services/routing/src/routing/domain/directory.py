"""The provider directory in pure Python: localities, organisations, opening hours."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from rx_contracts import ProviderType

from .clock import DAYS, hhmm, minute_of_day, parse_hhmm, weekday
from .errors import Collector

ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")
POSTCODE_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")
LOCALITY_CODE = re.compile(r"^[a-z][a-z0-9-]{1,63}$")

Interval = tuple[int, int]
"""Minutes since local midnight: [start, end)."""


@dataclass(frozen=True)
class OpeningHours:
    """When an organisation takes referrals, per local weekday. ``None`` hours (on the
    organisation) mean always open; a day missing here means closed all day."""

    days: Mapping[str, tuple[Interval, ...]]

    def is_open(self, at: datetime) -> bool:
        minute = minute_of_day(at)
        return any(start <= minute < end for start, end in self.days.get(weekday(at), ()))

    def as_json(self) -> dict[str, list[str]]:
        return {
            day: [f"{hhmm(s)}-{hhmm(e)}" for s, e in self.days[day]]
            for day in DAYS
            if day in self.days
        }


@dataclass(frozen=True)
class Organisation:
    ods_code: str
    name: str
    provider_type: ProviderType
    localities: frozenset[str]
    active: bool = True
    opening_hours: OpeningHours | None = None
    """None: open around the clock."""
    daily_capacity: int | None = None
    """Referrals it can be given per local day; None: no limit."""

    def is_open(self, at: datetime) -> bool:
        return self.opening_hours is None or self.opening_hours.is_open(at)


@dataclass(frozen=True)
class Locality:
    code: str
    name: str
    population: int
    districts: frozenset[str]


def parse_opening_hours(
    raw: Mapping[str, Sequence[str]] | None, errors: Collector, field: str = "opening_hours"
) -> OpeningHours | None:
    """``{"mon": ["08:00-12:30", "13:30-18:00"], …}`` (local time; a missing day is closed,
    "00:00-24:00" all day) or None (always open). Broken rules go to ``errors``."""
    if raw is None:
        return None
    days: dict[str, tuple[Interval, ...]] = {}
    for day, spans in raw.items():
        where = f"{field}.{day}"
        if day not in DAYS:
            errors.add(where, "weekday", f"{day!r} is not one of {', '.join(DAYS)}")
            continue
        intervals: list[Interval] = []
        for index, span in enumerate(spans):
            parsed = parse_interval(span)
            if parsed is None:
                errors.add(
                    f"{where}.{index}",
                    "opening_hours_shape",
                    f"{span!r} is not HH:MM-HH:MM with the start before the end "
                    "(local time; 24:00 ends the day)",
                )
                continue
            intervals.append(parsed)
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            if start < end:
                errors.add(where, "overlapping_hours", f"the times on {day} overlap")
                break
        days[day] = tuple(intervals)
    return OpeningHours(days)


def parse_interval(span: str) -> Interval | None:
    """ "08:00-20:00" → (480, 1200); None unless the start is before the end."""
    start_text, sep, end_text = span.partition("-")
    start, end = parse_hhmm(start_text.strip()), parse_hhmm(end_text.strip())
    if not sep or start is None or end is None or start >= end:
        return None
    return start, end
