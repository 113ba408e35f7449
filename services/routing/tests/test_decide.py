"""Rule matching: who receives a referral, and why nobody does."""

from __future__ import annotations

from routing.domain.model import Organisation, ReferralFacts, Routed, Rule, Unroutable, decide
from routing.seed import LOCALITIES
from rx_contracts import Priority, ProviderType, ServiceType

LOCALITY_OF = {d: loc for loc, ds in LOCALITIES.items() for d in ds}
UCR = ServiceType.URGENT_COMMUNITY_RESPONSE
RULES = [Rule("ucr", 3, UCR, ProviderType.RAPID_RESPONSE)]
ORGS = [
    Organisation("RXA02", "North team", ProviderType.RAPID_RESPONSE, frozenset({"north", "east"})),
    Organisation("RXA01", "City team", ProviderType.RAPID_RESPONSE, frozenset({"east"})),
    Organisation("SCC01", "Council", ProviderType.SOCIAL_CARE, frozenset({"east"})),
    Organisation(
        "RXA00", "Closed team", ProviderType.RAPID_RESPONSE, frozenset({"east"}), active=False
    ),
]


def facts(
    district: str = "BS5", service: ServiceType = UCR, rejected: frozenset[str] = frozenset()
) -> ReferralFacts:
    return ReferralFacts("r-1", service, Priority.URGENT, district, rejected)


def test_the_first_active_organisation_of_the_rules_type_serving_the_locality_is_chosen() -> None:
    outcome = decide(facts(), LOCALITY_OF, RULES, ORGS)
    assert isinstance(outcome, Routed)
    assert (outcome.organisation.ods_code, outcome.locality, outcome.rule.version) == (
        "RXA01",
        "east",
        3,
    )


def test_an_organisation_that_rejected_the_referral_is_skipped() -> None:
    outcome = decide(facts(rejected=frozenset({"RXA01"})), LOCALITY_OF, RULES, ORGS)
    assert isinstance(outcome, Routed) and outcome.organisation.ods_code == "RXA02"


def test_unroutable_says_why() -> None:
    nobody_left = decide(facts(rejected=frozenset({"RXA01", "RXA02"})), LOCALITY_OF, RULES, ORGS)
    assert (
        isinstance(nobody_left, Unroutable)
        and "no eligible rapid-response organisation serves east" in nobody_left.reason
    )
    unknown = decide(facts(district="ZZ9"), LOCALITY_OF, RULES, ORGS)
    assert isinstance(unknown, Unroutable) and "ZZ9" in unknown.reason and unknown.locality is None
    no_rule = decide(facts(service=ServiceType.GP_REVIEW), LOCALITY_OF, RULES, ORGS)
    assert isinstance(no_rule, Unroutable) and "no rule for gp-review" in no_rule.reason


def test_priority_restricted_rules_only_match_their_priorities() -> None:
    rule = Rule("stat-only", 1, UCR, ProviderType.RAPID_RESPONSE, frozenset({Priority.STAT}))
    assert rule.matches(UCR, Priority.STAT)
    assert not rule.matches(UCR, Priority.URGENT)
