"""Routing decisions in pure Python: which organisation should receive a referral, and why
nobody could; and the decision as routing keeps it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from rx_contracts import Priority, ProviderType, ServiceType

from .clock import hhmm, local_day, minute_of_day
from .directory import Organisation
from .rules import Rule, RuleSet
from .sla import SlaPolicy, policy_for


@dataclass(frozen=True)
class Directory:
    """Everything routing decides with, read once and kept until an administrator changes
    something (``version`` moves on every change)."""

    version: int
    districts: dict[str, str]
    """Postcode district → locality code."""
    organisations: dict[str, Organisation]
    rule_sets: dict[str, RuleSet]
    """Locality code → its active rule set."""
    policies: tuple[SlaPolicy, ...] = ()

    def policy(self, service_type: ServiceType, priority: Priority) -> SlaPolicy | None:
        return policy_for(self.policies, service_type, priority)


# ReferralFacts, Routed and Unroutable are built for every referral routed: not frozen, as
# frozen dataclasses are slower to build.


@dataclass(slots=True)
class ReferralFacts:
    """What routing knows of a referral: only what the events carried."""

    referral_id: str
    service_type: ServiceType
    priority: Priority
    postcode_district: str
    cohorts: frozenset[str] = frozenset()
    """Names of the cohort flags that are set."""
    declined_by: frozenset[str] = frozenset()
    """Organisations that rejected it or let it time out: never offered it again."""
    target_provider_type: ProviderType | None = None
    """Named by a redirect or by ops: route to this type instead of following the rules."""
    target_org: str | None = None
    """Named by a redirect or by ops: route to this organisation."""


@dataclass(slots=True)
class Routed:
    organisation: Organisation
    locality: str
    rule: Rule | None
    """None when a redirect or ops named the target."""
    rule_set_version: int | None = None


@dataclass(slots=True)
class Unroutable:
    reason: str
    locality: str | None
    skipped: dict[str, str] = field(default_factory=dict)
    """Candidate → why it was passed over."""


class DecisionOutcome(StrEnum):
    ROUTED = "routed"
    UNROUTABLE = "unroutable"


@dataclass(slots=True)
class Decision:
    """One routing decision and, once known, what the organisation did with it."""

    id: str
    referral_id: str
    attempt: int
    outcome: DecisionOutcome
    assigned_org: str | None
    provider_type: ProviderType | None
    locality: str | None
    rule_id: str | None
    """<locality>/<rule id> that chose the organisation (None: a named target, or none)."""
    rule_version: int | None
    reason: str | None
    """Why nobody could take it."""
    decided_at: datetime
    accepted_at: datetime | None = None
    released_at: datetime | None = None
    release: str | None = None
    """How the organisation let it go: rejected | redirected | rerouted | acceptance-timeout."""


Load = Callable[[str, date], int]
"""Referrals an organisation was given on a local day (for daily capacity)."""


def decide(
    facts: ReferralFacts, directory: Directory, at: datetime, load: Load
) -> Routed | Unroutable:
    """A named organisation if one was named (and is active); with a named provider type,
    the first eligible organisation of that type serving the locality (ODS-code order);
    otherwise the first eligible candidate of the first matching rule of the locality's
    active rule set, trying later matching rules when a rule's candidates are all passed
    over. Eligible: active, serving the locality, not having declined this referral, open at
    ``at`` and under its daily capacity."""
    locality = directory.districts.get(facts.postcode_district)
    if locality is None:
        return Unroutable(
            f"postcode district {facts.postcode_district} is in no known locality", None
        )
    if facts.target_org is not None:
        named = directory.organisations.get(facts.target_org)
        if named is None or not named.active:
            return Unroutable(
                f"named organisation {facts.target_org} is not an active organisation", locality
            )
        return Routed(named, locality, None)
    skipped: dict[str, str] = {}
    if facts.target_provider_type is not None:
        of_type = sorted(
            (
                o
                for o in directory.organisations.values()
                if o.provider_type == facts.target_provider_type and locality in o.localities
            ),
            key=lambda o: o.ods_code,
        )
        for org in of_type:
            why = skip_reason(org, facts, locality, at, load)
            if why is None:
                return Routed(org, locality, None)
            skipped[org.ods_code] = why
        return Unroutable(
            f"no eligible {facts.target_provider_type.value} organisation serves {locality}"
            + _listing(skipped),
            locality,
            skipped,
        )
    rule_set = directory.rule_sets.get(locality)
    if rule_set is None:
        return Unroutable(f"locality {locality} has no active rule set", locality)
    matched = False
    for rule in rule_set.rules:  # later rules are looked at only if no candidate was eligible
        if not rule.matches(facts.service_type, facts.priority, facts.cohorts, at):
            continue
        matched = True
        for code in rule.candidates:
            if code in skipped:
                continue
            candidate = directory.organisations.get(code)
            why = (
                "is not in the directory"
                if candidate is None
                else skip_reason(candidate, facts, locality, at, load)
            )
            if why is None and candidate is not None:
                return Routed(candidate, locality, rule, rule_set.version)
            skipped[code] = why or "ineligible"
    if not matched:
        return Unroutable(
            f"no rule of {locality} v{rule_set.version} matches {facts.service_type.value} "
            f"at {facts.priority.value} priority at {hhmm(minute_of_day(at))} local time",
            locality,
        )
    return Unroutable(
        f"no eligible candidate in {locality} for {facts.service_type.value}" + _listing(skipped),
        locality,
        skipped,
    )


def skip_reason(
    org: Organisation, facts: ReferralFacts, locality: str, at: datetime, load: Load
) -> str | None:
    """Why ``org`` cannot take this referral now, or None if it can."""
    if not org.active:
        return "is inactive"
    if locality not in org.localities:
        return f"does not serve {locality}"
    if org.ods_code in facts.declined_by:
        return "declined this referral"
    if not org.is_open(at):
        return f"is closed at {hhmm(minute_of_day(at))} local time"
    if org.daily_capacity is not None and load(org.ods_code, local_day(at)) >= org.daily_capacity:
        return f"has reached its daily capacity of {org.daily_capacity}"
    return None


def _listing(skipped: dict[str, str]) -> str:
    if not skipped:
        return ""
    return ": " + "; ".join(f"{code} {why}" for code, why in skipped.items())
