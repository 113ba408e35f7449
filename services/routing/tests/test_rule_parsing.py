"""Rule sets from files (the replay command) get the same checks as uploads."""

from __future__ import annotations

from routing.domain.directory import Organisation
from routing.domain.errors import Collector
from routing.domain.rules import parse_rules
from rx_contracts import Priority, ProviderType, ServiceType

ORGS = {"RXA01": Organisation("RXA01", "Team", ProviderType.RAPID_RESPONSE, frozenset({"east"}))}


def test_every_unknown_value_and_field_is_named() -> None:
    errors = Collector()
    parse_rules(
        [
            {
                "id": "a",
                "service_types": ["urgent-community-response", "dentistry"],
                "priorities": "urgent",
                "cohorts": ["frailty", "teenager"],
                "hours": {"from": "20:00", "to": "20:00", "days": ["mon", "xmas"], "tz": "UTC"},
                "candidates": ["RXA01"],
                "weight": 2,
            },
            {"candidates": []},
        ],
        "east",
        ORGS,
        errors,
    )
    assert {(e.field, e.rule) for e in errors.errors} == {
        ("rules.0.service_types.1", "unknown_value"),
        ("rules.0.priorities", "list_expected"),
        ("rules.0.cohorts.1", "unknown_cohort"),
        ("rules.0.hours", "empty_window"),
        ("rules.0.hours.days", "weekday"),
        ("rules.0.hours.tz", "unknown_field"),
        ("rules.0.weight", "unknown_field"),
        ("rules.1.id", "rule_id"),
        ("rules.1.candidates", "candidates_required"),
    }


def test_a_valid_rule_round_trips_through_its_stored_shape() -> None:
    raw = {
        "id": "ucr-night",
        "service_types": ["urgent-community-response"],
        "priorities": ["urgent", "stat"],
        "cohorts": ["frailty"],
        "hours": {"from": "20:00", "to": "08:00", "days": ["sat", "sun"]},
        "candidates": ["RXA01"],
    }
    errors = Collector()
    [rule] = parse_rules([raw], "east", ORGS, errors)
    assert errors.errors == []
    assert rule.priorities == {Priority.URGENT, Priority.STAT}
    assert rule.service_types == {ServiceType.URGENT_COMMUNITY_RESPONSE}
    again = parse_rules([rule.as_json()], "east", ORGS, Collector())
    assert again == (rule,)
