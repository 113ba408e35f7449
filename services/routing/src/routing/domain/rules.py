"""Routing rules: versioned sets, one active set per locality, each an ordered list of rules
that name candidate organisations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rx_contracts import CohortFlags, Priority, ServiceType

from .clock import DAYS, hhmm, minute_of_day, parse_hhmm, weekday
from .directory import Organisation
from .errors import Collector

COHORTS = tuple(CohortFlags.model_fields)
"""Cohort names a rule may require: care_home_resident, frailty, end_of_life."""

SERVICE_TYPES = tuple(s.value for s in ServiceType)
PRIORITIES = tuple(p.value for p in Priority)
RULE_FIELDS = {"id", "service_types", "priorities", "cohorts", "hours", "candidates"}


@dataclass(frozen=True)
class TimeWindow:
    """Local time of day, "from" inclusive, "to" exclusive; from > to crosses midnight
    (20:00–08:00 is the night). ``days`` limits it to local weekdays (empty: every day)."""

    start: int
    end: int
    days: frozenset[str] = frozenset()

    def contains(self, at: datetime) -> bool:
        if self.days and weekday(at) not in self.days:
            return False
        minute = minute_of_day(at)
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"from": hhmm(self.start), "to": hhmm(self.end)}
        if self.days:
            out["days"] = [d for d in DAYS if d in self.days]
        return out


@dataclass(frozen=True)
class Rule:
    """When a referral matches every condition given (an empty list matches anything; within
    a list, any one value matches), offer it to ``candidates`` in order."""

    id: str
    candidates: tuple[str, ...]
    service_types: frozenset[ServiceType] = frozenset()
    priorities: frozenset[Priority] = frozenset()
    cohorts: frozenset[str] = frozenset()
    """The referral has at least one of these cohort flags."""
    hours: TimeWindow | None = None
    """Only at these local times (of the routing decision)."""

    def matches(
        self, service_type: ServiceType, priority: Priority, cohorts: frozenset[str], at: datetime
    ) -> bool:
        return (
            (not self.service_types or service_type in self.service_types)
            and (not self.priorities or priority in self.priorities)
            and (not self.cohorts or bool(self.cohorts & cohorts))
            and (self.hours is None or self.hours.contains(at))
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service_types": sorted(s.value for s in self.service_types),
            "priorities": sorted(p.value for p in self.priorities),
            "cohorts": sorted(self.cohorts),
            "hours": self.hours.as_json() if self.hours else None,
            "candidates": list(self.candidates),
        }


@dataclass(frozen=True)
class RuleSet:
    """One version of a locality's rules; the first matching rule with an eligible
    candidate decides."""

    locality: str
    version: int
    rules: tuple[Rule, ...] = field(default_factory=tuple)


def parse_rules(
    raw: Sequence[Mapping[str, Any]],
    locality: str,
    organisations: Mapping[str, Organisation],
    errors: Collector,
    field_name: str = "rules",
) -> tuple[Rule, ...]:
    """Rules from their JSON shape, every condition checked against known values and every
    candidate against the directory (it must exist and serve ``locality``)."""
    if not raw:
        errors.add(field_name, "rules_required", "a rule set needs at least one rule")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"{field_name}.{index}"
        unknown = sorted(set(item) - RULE_FIELDS)
        for name in unknown:
            errors.add(f"{where}.{name}", "unknown_field", f"rules have no field {name!r}")
        rule_id = item.get("id")
        if not isinstance(rule_id, str) or not rule_id.strip() or len(rule_id) > 64:
            errors.add(f"{where}.id", "rule_id", "a rule needs an id of 1-64 characters")
            rule_id = f"#{index}"
        elif rule_id in seen:
            errors.add(f"{where}.id", "duplicate_rule_id", f"rule id {rule_id!r} is used twice")
        seen.add(rule_id)
        rules.append(
            Rule(
                id=rule_id,
                candidates=_candidates(
                    item.get("candidates"), locality, organisations, errors, where
                ),
                service_types=frozenset(
                    ServiceType(v)
                    for v in _known(
                        item.get("service_types"), SERVICE_TYPES, errors, f"{where}.service_types"
                    )
                ),
                priorities=frozenset(
                    Priority(v)
                    for v in _known(
                        item.get("priorities"), PRIORITIES, errors, f"{where}.priorities"
                    )
                ),
                cohorts=frozenset(
                    _known(
                        item.get("cohorts"), COHORTS, errors, f"{where}.cohorts", "unknown_cohort"
                    )
                ),
                hours=_window(item.get("hours"), errors, f"{where}.hours"),
            )
        )
    return tuple(rules)


def _known(
    raw: Any, allowed: Sequence[str], errors: Collector, where: str, rule: str = "unknown_value"
) -> list[str]:
    """The values of the list ``raw`` that are ``allowed``; each other one is an error."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors.add(where, "list_expected", "expected a list")
        return []
    for index, value in enumerate(raw):
        if value not in allowed:
            errors.add(f"{where}.{index}", rule, f"{value!r} is not one of {', '.join(allowed)}")
    return [value for value in raw if value in allowed]


def _window(raw: Any, errors: Collector, where: str) -> TimeWindow | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.add(where, "object_expected", 'expected {"from": "HH:MM", "to": "HH:MM"}')
        return None
    for name in sorted(set(raw) - {"from", "to", "days"}):
        errors.add(f"{where}.{name}", "unknown_field", f"hours have no field {name!r}")
    start = parse_hhmm(str(raw.get("from", "")))
    end = parse_hhmm(str(raw.get("to", "")))
    if start is None or start == 24 * 60:
        errors.add(f"{where}.from", "time_of_day", "from must be a local time HH:MM (00:00-23:59)")
    if end is None:
        errors.add(f"{where}.to", "time_of_day", "to must be a local time HH:MM (00:00-24:00)")
    if start is not None and end is not None and start == end:
        errors.add(where, "empty_window", "from and to are the same time")
    days = raw.get("days") or []
    bad = [d for d in days if d not in DAYS] if isinstance(days, list) else [days]
    for day in bad:
        errors.add(f"{where}.days", "weekday", f"{day!r} is not one of {', '.join(DAYS)}")
    if start is None or end is None:
        return None
    return TimeWindow(
        start, end, frozenset(d for d in days if d in DAYS) if not bad else frozenset()
    )


def _candidates(
    raw: Any,
    locality: str,
    organisations: Mapping[str, Organisation],
    errors: Collector,
    where: str,
) -> tuple[str, ...]:
    where = f"{where}.candidates"
    if not isinstance(raw, list) or not raw:
        errors.add(where, "candidates_required", "name at least one candidate organisation")
        return ()
    if len(set(raw)) != len(raw):
        errors.add(where, "duplicate_candidate", "a candidate is named twice")
    for index, code in enumerate(raw):
        org = organisations.get(code) if isinstance(code, str) else None
        if org is None:
            errors.add(
                f"{where}.{index}", "unknown_organisation", f"{code!r} is not in the directory"
            )
        elif locality not in org.localities:
            errors.add(
                f"{where}.{index}",
                "candidate_serves_locality",
                f"{code} does not serve {locality}",
            )
    return tuple(str(c) for c in raw)
