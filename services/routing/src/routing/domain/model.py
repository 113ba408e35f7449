"""Routing decisions in pure Python: which organisation should receive a referral."""

from __future__ import annotations

from dataclasses import dataclass, field

from rx_contracts import Priority, ProviderType, ServiceType


@dataclass(frozen=True)
class Organisation:
    ods_code: str
    name: str
    provider_type: ProviderType
    localities: frozenset[str]
    active: bool = True


@dataclass(frozen=True)
class Rule:
    """Send referrals of ``service_type`` (optionally only some priorities) to organisations
    of ``provider_type`` serving the patient's locality."""

    id: str
    version: int
    service_type: ServiceType
    provider_type: ProviderType
    priorities: frozenset[Priority] = field(default_factory=frozenset)

    def matches(self, service_type: ServiceType, priority: Priority) -> bool:
        return self.service_type == service_type and (
            not self.priorities or priority in self.priorities
        )


@dataclass(frozen=True)
class ReferralFacts:
    """What routing knows of a referral: only what the event carried."""

    referral_id: str
    service_type: ServiceType
    priority: Priority
    postcode_district: str
    rejected_by: frozenset[str] = frozenset()
    target_provider_type: ProviderType | None = None
    """Named by a redirect or by ops: route to this type instead of following the rules."""
    target_org: str | None = None
    """Named by a redirect or by ops: route to this organisation."""


@dataclass(frozen=True)
class Routed:
    organisation: Organisation
    locality: str
    rule: Rule | None
    """None when a redirect or ops named the target."""


@dataclass(frozen=True)
class Unroutable:
    reason: str
    locality: str | None


def decide(
    facts: ReferralFacts,
    localities: dict[str, str],
    rules: list[Rule],
    organisations: list[Organisation],
) -> Routed | Unroutable:
    """A named organisation if one was named (and is active); otherwise the first eligible
    organisation (active, serving the locality, not having rejected this referral) of the
    named provider type, or of the first matching rule's type, in ODS-code order."""
    locality = localities.get(facts.postcode_district)
    if locality is None:
        return Unroutable(
            f"postcode district {facts.postcode_district} is in no known locality", None
        )
    if facts.target_org is not None:
        named = next(
            (o for o in organisations if o.ods_code == facts.target_org and o.active), None
        )
        if named is None:
            return Unroutable(
                f"named organisation {facts.target_org} is not an active organisation", locality
            )
        return Routed(named, locality, None)
    if facts.target_provider_type is not None:
        found = _first_eligible(facts, locality, facts.target_provider_type, organisations)
        if found is None:
            return Unroutable(
                f"no eligible {facts.target_provider_type.value} organisation serves {locality}",
                locality,
            )
        return Routed(found, locality, None)
    matching = [r for r in rules if r.matches(facts.service_type, facts.priority)]
    if not matching:
        return Unroutable(
            f"no rule for {facts.service_type.value} at {facts.priority.value} priority", locality
        )
    for rule in matching:
        found = _first_eligible(facts, locality, rule.provider_type, organisations)
        if found is not None:
            return Routed(found, locality, rule)
    return Unroutable(
        f"no eligible {matching[0].provider_type.value} organisation serves {locality}", locality
    )


def _first_eligible(
    facts: ReferralFacts,
    locality: str,
    provider_type: ProviderType,
    organisations: list[Organisation],
) -> Organisation | None:
    eligible = [
        org
        for org in organisations
        if org.active
        and org.provider_type == provider_type
        and locality in org.localities
        and org.ods_code not in facts.rejected_by
    ]
    return min(eligible, key=lambda org: org.ods_code, default=None)
