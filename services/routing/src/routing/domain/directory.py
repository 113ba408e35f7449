"""The provider directory in pure Python: localities, organisations, opening hours."""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Mapping, Sequence
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


def check_locality(
    code: str,
    population: int,
    districts: Sequence[str],
    owners: Mapping[str, str],
    errors: Collector,
) -> None:
    """A locality's code, population and districts (``owners``: the locality each district
    already belongs to, if any; a district of another locality cannot be taken)."""
    if not LOCALITY_CODE.fullmatch(code):
        errors.add("code", "locality_code", "lower-case letters, digits and '-', 2-64 long")
    if population < 0:
        errors.add("population", "non_negative", "population cannot be negative")
    for index, district in enumerate(districts):
        where = f"districts.{index}"
        if not POSTCODE_DISTRICT.fullmatch(district):
            errors.add(where, "postcode_district", f"{district!r} is not an outward code like BS5")
        elif owners.get(district, code) != code:
            errors.add(where, "district_taken", f"{district} is in {owners[district]} already")
    if len(set(districts)) != len(districts):
        errors.add("districts", "duplicate_district", "a district is listed twice")


def check_organisation(
    ods_code: str,
    localities: Sequence[str],
    known_localities: Collection[str],
    daily_capacity: int | None,
    opening_hours: Mapping[str, Sequence[str]] | None,
    errors: Collector,
) -> OpeningHours | None:
    """An organisation's ODS code, the localities it serves (each must exist), its capacity;
    returns its opening hours, parsed."""
    if not ODS_CODE.fullmatch(ods_code):
        errors.add("ods_code", "ods_code", "an ODS code is 3 to 10 upper-case letters and digits")
    for index, locality in enumerate(localities):
        if locality not in known_localities:
            errors.add(f"localities.{index}", "unknown_locality", f"{locality!r} is not a locality")
    if not localities:
        errors.add("localities", "localities_required", "an organisation serves a locality")
    if daily_capacity is not None and daily_capacity < 0:
        errors.add("daily_capacity", "non_negative", "capacity cannot be negative")
    return parse_opening_hours(opening_hours, errors)


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
