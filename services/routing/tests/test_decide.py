"""Rule matching: who receives a referral, and why nobody does. Pure domain, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from routing.domain.clock import parse_hhmm
from routing.domain.decision import Directory, ReferralFacts, Routed, Unroutable, decide
from routing.domain.directory import OpeningHours, Organisation
from routing.domain.rules import Rule, RuleSet, TimeWindow
from rx_contracts import Priority, ProviderType, ServiceType

UCR = ServiceType.URGENT_COMMUNITY_RESPONSE
RR = ProviderType.RAPID_RESPONSE
WINTER_MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 09:00 in London (GMT)
SUMMER_MONDAY_0730_UTC = datetime(2026, 6, 22, 7, 30, tzinfo=UTC)  # 08:30 in London (BST)


def window(start: str, end: str, *days: str) -> TimeWindow:
    return TimeWindow(parse_hhmm(start) or 0, parse_hhmm(end) or 0, frozenset(days))


def hours(span: str, *days: str) -> OpeningHours:
    start, end = (parse_hhmm(part) or 0 for part in span.split("-"))
    return OpeningHours({day: ((start, end),) for day in days})


def org(code: str, **changes) -> Organisation:
    fields = {
        "ods_code": code,
        "name": code,
        "provider_type": RR,
        "localities": frozenset({"east"}),
    }
    return Organisation(**(fields | changes))


def directory(*rules: Rule, orgs: list[Organisation] | None = None) -> Directory:
    organisations = orgs or [org("RXA01"), org("RXA02"), org("RXA03")]
    return Directory(
        version=1,
        districts={"BS5": "east", "BS7": "north"},
        organisations={o.ods_code: o for o in organisations},
        rule_sets={"east": RuleSet("east", 4, rules)},
    )


def facts(**changes) -> ReferralFacts:
    fields = {
        "referral_id": "r-1",
        "service_type": UCR,
        "priority": Priority.URGENT,
        "postcode_district": "BS5",
    }
    return ReferralFacts(**(fields | changes))


def no_load(_org: str, _day: date) -> int:
    return 0


def chosen(outcome: Routed | Unroutable) -> str:
    assert isinstance(outcome, Routed), outcome
    return outcome.organisation.ods_code


UCR_RULE = Rule("ucr", ("RXA01", "RXA02"), frozenset({UCR}))


def test_the_first_candidate_of_the_first_matching_rule_is_chosen_and_named() -> None:
    outcome = decide(facts(), directory(UCR_RULE), WINTER_MONDAY_9, no_load)
    assert isinstance(outcome, Routed)
    assert (
        outcome.organisation.ods_code,
        outcome.locality,
        outcome.rule,
        outcome.rule_set_version,
    ) == (
        "RXA01",
        "east",
        UCR_RULE,
        4,
    )


def test_an_organisation_that_declined_the_referral_is_skipped() -> None:
    outcome = decide(
        facts(declined_by=frozenset({"RXA01"})), directory(UCR_RULE), WINTER_MONDAY_9, no_load
    )
    assert chosen(outcome) == "RXA02"


def test_nobody_left_is_unroutable_saying_why_each_candidate_was_passed_over() -> None:
    outcome = decide(
        facts(declined_by=frozenset({"RXA01", "RXA02"})),
        directory(UCR_RULE),
        WINTER_MONDAY_9,
        no_load,
    )
    assert isinstance(outcome, Unroutable)
    assert outcome.skipped == {"RXA01": "declined this referral", "RXA02": "declined this referral"}
    assert "no eligible candidate in east" in outcome.reason and "RXA02 declined" in outcome.reason


def test_unknown_district_missing_rule_set_and_no_matching_rule_are_unroutable() -> None:
    unknown = decide(facts(postcode_district="ZZ9"), directory(UCR_RULE), WINTER_MONDAY_9, no_load)
    assert isinstance(unknown, Unroutable) and "ZZ9" in unknown.reason and unknown.locality is None
    north = decide(facts(postcode_district="BS7"), directory(UCR_RULE), WINTER_MONDAY_9, no_load)
    assert isinstance(north, Unroutable) and "north has no active rule set" in north.reason
    gp = decide(
        facts(service_type=ServiceType.GP_REVIEW), directory(UCR_RULE), WINTER_MONDAY_9, no_load
    )
    assert isinstance(gp, Unroutable) and "no rule of east v4 matches gp-review" in gp.reason


def test_priorities_and_cohorts_narrow_a_rule() -> None:
    stat_only = Rule("stat", ("RXA03",), frozenset({UCR}), priorities=frozenset({Priority.STAT}))
    end_of_life = Rule(
        "eol", ("RXA02",), frozenset({UCR}), cohorts=frozenset({"end_of_life", "frailty"})
    )
    rules = directory(stat_only, end_of_life, UCR_RULE)
    assert chosen(decide(facts(priority=Priority.STAT), rules, WINTER_MONDAY_9, no_load)) == "RXA03"
    assert (
        chosen(decide(facts(cohorts=frozenset({"frailty"})), rules, WINTER_MONDAY_9, no_load))
        == "RXA02"
    ), "any one of the rule's cohorts is enough"
    assert (
        chosen(
            decide(
                facts(cohorts=frozenset({"care_home_resident"})), rules, WINTER_MONDAY_9, no_load
            )
        )
        == "RXA01"
    )


def test_time_of_day_rules_use_london_time_and_can_cross_midnight() -> None:
    day = Rule("day", ("RXA01",), frozenset({UCR}), hours=window("08:00", "20:00"))
    night = Rule("night", ("RXA02",), frozenset({UCR}), hours=window("20:00", "08:00"))
    rules = directory(day, night)
    assert chosen(decide(facts(), rules, WINTER_MONDAY_9, no_load)) == "RXA01"
    assert (
        chosen(decide(facts(), rules, datetime(2026, 11, 23, 20, 0, tzinfo=UTC), no_load))
        == "RXA02"
    )
    assert (
        chosen(decide(facts(), rules, datetime(2026, 11, 24, 3, 0, tzinfo=UTC), no_load)) == "RXA02"
    )
    assert (
        chosen(decide(facts(), rules, datetime(2026, 11, 23, 19, 59, tzinfo=UTC), no_load))
        == "RXA01"
    )


def test_time_of_day_follows_british_summer_time() -> None:
    day = Rule("day", ("RXA01",), frozenset({UCR}), hours=window("08:00", "20:00"))
    night = Rule("night", ("RXA02",), frozenset({UCR}), hours=window("20:00", "08:00"))
    rules = directory(day, night)
    # 07:30 UTC is 08:30 in London in June (daytime), but 07:30 in London in November (night).
    assert chosen(decide(facts(), rules, SUMMER_MONDAY_0730_UTC, no_load)) == "RXA01"
    assert (
        chosen(decide(facts(), rules, datetime(2026, 11, 23, 7, 30, tzinfo=UTC), no_load))
        == "RXA02"
    )
    # 19:30 UTC on the evening before the clocks go back (BST) is 20:30 local: night.
    assert (
        chosen(decide(facts(), rules, datetime(2026, 10, 24, 19, 30, tzinfo=UTC), no_load))
        == "RXA02"
    )
    # The same UTC time the next evening (GMT) is 19:30 local: still day.
    assert (
        chosen(decide(facts(), rules, datetime(2026, 10, 25, 19, 30, tzinfo=UTC), no_load))
        == "RXA01"
    )


def test_weekday_limited_windows_use_the_local_weekday() -> None:
    weekdays = Rule(
        "weekdays",
        ("RXA01",),
        frozenset({UCR}),
        hours=window("00:00", "24:00", "mon", "tue", "wed", "thu", "fri"),
    )
    rules = directory(weekdays, Rule("rest", ("RXA02",), frozenset({UCR})))
    # 23:30 UTC on Sunday 28 June is 00:30 on Monday in London.
    assert (
        chosen(decide(facts(), rules, datetime(2026, 6, 28, 23, 30, tzinfo=UTC), no_load))
        == "RXA01"
    )
    assert (
        chosen(decide(facts(), rules, datetime(2026, 6, 28, 22, 30, tzinfo=UTC), no_load))
        == "RXA02"
    )


def test_a_closed_organisation_is_skipped_and_opening_hours_follow_dst() -> None:
    office = org("RXA01", opening_hours=hours("08:00-18:00", "mon", "tue", "wed", "thu", "fri"))
    rules = directory(UCR_RULE, orgs=[office, org("RXA02")])
    assert chosen(decide(facts(), rules, WINTER_MONDAY_9, no_load)) == "RXA01"
    evening = decide(facts(), rules, datetime(2026, 11, 23, 18, 0, tzinfo=UTC), no_load)
    assert chosen(evening) == "RXA02"
    # 07:30 UTC in June is 08:30 BST: open. In November 07:30 UTC is 07:30 GMT: closed.
    assert chosen(decide(facts(), rules, SUMMER_MONDAY_0730_UTC, no_load)) == "RXA01"
    winter = decide(
        facts(declined_by=frozenset({"RXA02"})),
        rules,
        datetime(2026, 11, 23, 7, 30, tzinfo=UTC),
        no_load,
    )
    assert isinstance(winter, Unroutable)
    assert winter.skipped["RXA01"] == "is closed at 07:30 local time"
    saturday = decide(facts(), rules, datetime(2026, 11, 28, 10, 0, tzinfo=UTC), no_load)
    assert chosen(saturday) == "RXA02", "a weekday missing from the hours is closed all day"


def test_an_organisation_at_its_daily_capacity_is_skipped_counting_the_local_day() -> None:
    small = org("RXA01", daily_capacity=2)
    rules = directory(UCR_RULE, orgs=[small, org("RXA02")])
    given = {("RXA01", date(2026, 6, 23)): 2}

    def load(code: str, day: date) -> int:
        return given.get((code, day), 0)

    # 23:30 UTC on 22 June is already 23 June in London: that day is full.
    late = decide(facts(), rules, datetime(2026, 6, 22, 23, 30, tzinfo=UTC), load)
    assert chosen(late) == "RXA02"
    assert (
        chosen(decide(facts(), rules, datetime(2026, 6, 22, 22, 30, tzinfo=UTC), load)) == "RXA01"
    )
    zero = directory(UCR_RULE, orgs=[org("RXA01", daily_capacity=0), org("RXA02", active=False)])
    nobody = decide(facts(), zero, WINTER_MONDAY_9, no_load)
    assert isinstance(nobody, Unroutable)
    assert nobody.skipped == {
        "RXA01": "has reached its daily capacity of 0",
        "RXA02": "is inactive",
    }


def test_a_later_matching_rule_is_tried_when_the_first_has_nobody_eligible() -> None:
    first = Rule("team-a", ("RXA01",), frozenset({UCR}))
    fallback = Rule("fallback", ("RXA01", "RXA03"), frozenset({UCR}))
    outcome = decide(
        facts(declined_by=frozenset({"RXA01"})),
        directory(first, fallback),
        WINTER_MONDAY_9,
        no_load,
    )
    assert isinstance(outcome, Routed) and (outcome.organisation.ods_code, outcome.rule.id) == (
        "RXA03",
        "fallback",
    )


def test_named_targets_bypass_the_rules() -> None:
    social = org("SCC01", provider_type=ProviderType.SOCIAL_CARE)
    rules = directory(
        UCR_RULE,
        orgs=[
            org("RXA01"),
            social,
            org("SCC00", provider_type=ProviderType.SOCIAL_CARE, active=False),
        ],
    )
    by_type = decide(
        facts(target_provider_type=ProviderType.SOCIAL_CARE), rules, WINTER_MONDAY_9, no_load
    )
    assert isinstance(by_type, Routed) and (by_type.organisation.ods_code, by_type.rule) == (
        "SCC01",
        None,
    )
    named = decide(
        facts(target_org="RXA01", declined_by=frozenset({"RXA01"})), rules, WINTER_MONDAY_9, no_load
    )
    assert chosen(named) == "RXA01", "ops may name an organisation explicitly"
    inactive = decide(facts(target_org="SCC00"), rules, WINTER_MONDAY_9, no_load)
    assert (
        isinstance(inactive, Unroutable)
        and "SCC00 is not an active organisation" in inactive.reason
    )


@pytest.mark.parametrize(
    ("start", "end", "at", "inside"),
    [
        ("08:00", "20:00", datetime(2026, 11, 23, 8, 0, tzinfo=UTC), True),
        ("08:00", "20:00", datetime(2026, 11, 23, 20, 0, tzinfo=UTC), False),
        ("22:00", "06:00", datetime(2026, 11, 23, 5, 59, tzinfo=UTC), True),
        ("22:00", "06:00", datetime(2026, 11, 23, 6, 0, tzinfo=UTC), False),
    ],
)
def test_window_edges_include_the_start_and_exclude_the_end(start, end, at, inside) -> None:
    assert window(start, end).contains(at) is inside
