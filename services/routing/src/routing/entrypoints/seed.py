"""Demo area: a city of four localities (each 30,000–50,000 people) with their postcode
districts; at least two organisations of every provider type, with opening hours and daily
capacities; one rule set per locality; SLA policies per service type. ``python -m routing
seed`` loads it through the same checks as the admin API; loading twice changes nothing."""

from __future__ import annotations

import logging
from typing import Any

from rx_contracts import Priority, ProviderType, ServiceType
from sqlalchemy.engine import Engine

from ..bootstrap import bootstrap
from ..config import get_settings
from ..service_layer import admin
from ..service_layer.unit_of_work import UnitOfWork, session_factory

P = ProviderType
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
OFFICE_HOURS = {day: ["08:00-18:30"] for day in WEEKDAYS}
COUNCIL_HOURS = {day: ["09:00-17:00"] for day in WEEKDAYS}
PARTNERSHIP_HOURS = {**{day: ["08:00-20:00"] for day in WEEKDAYS}, "sat": ["09:00-13:00"]}

LOCALITIES = [
    admin.LocalityData("central", "Central", 42_300, ["BS1", "BS2", "BS6", "BS8"]),
    admin.LocalityData("east", "East", 38_900, ["BS5", "BS15", "BS16"]),
    admin.LocalityData("north", "North", 47_600, ["BS7", "BS10", "BS34"]),
    admin.LocalityData("south", "South", 35_200, ["BS3", "BS4", "BS13", "BS14"]),
]
ALL = ["central", "east", "north", "south"]

ORGANISATIONS = [
    admin.OrganisationData(
        "L81001",
        "Harbourside Medical Practice",
        P.PRIMARY_CARE,
        ["central", "south"],
        OFFICE_HOURS,
        60,
    ),
    admin.OrganisationData(
        "L81002", "Eastgate Health Centre", P.PRIMARY_CARE, ["east", "north"], OFFICE_HOURS, 60
    ),
    admin.OrganisationData(
        "L81099", "City Out-of-Hours GP Service", P.PRIMARY_CARE, ALL, None, 200
    ),
    admin.OrganisationData(
        "RXA01", "City Urgent Community Response", P.RAPID_RESPONSE, ["central", "east"], None, 40
    ),
    admin.OrganisationData(
        "RXA02",
        "Northside Rapid Response Team",
        P.RAPID_RESPONSE,
        ["north", "south", "east"],
        None,
        40,
    ),
    admin.OrganisationData(
        "SCC01",
        "City Council Adult Social Care",
        P.SOCIAL_CARE,
        ["central", "east"],
        COUNCIL_HOURS,
        30,
    ),
    admin.OrganisationData(
        "SCC02",
        "South and North Care Partnership",
        P.SOCIAL_CARE,
        ["north", "south"],
        PARTNERSHIP_HOURS,
        30,
    ),
    admin.OrganisationData("SCC03", "Emergency Duty Team", P.SOCIAL_CARE, ALL, None, 20),
    admin.OrganisationData(
        "RAC01", "City Royal Infirmary", P.ACUTE, ["central", "east", "south"], None, None
    ),
    admin.OrganisationData("RAC02", "Northgate General Hospital", P.ACUTE, ["north", "central"]),
]

_RAPID = {"central": ["RXA01"], "east": ["RXA01", "RXA02"], "north": ["RXA02"], "south": ["RXA02"]}
_COUNCIL = {"central": ["SCC01"], "east": ["SCC01"], "north": ["SCC02"], "south": ["SCC02"]}
_PRACTICES = {
    "central": ["L81001"],
    "east": ["L81002"],
    "north": ["L81002"],
    "south": ["L81001"],
}
_HOSPITALS = {
    "central": ["RAC01", "RAC02"],
    "east": ["RAC01"],
    "north": ["RAC02"],
    "south": ["RAC01"],
}


def rules_for(locality: str) -> list[dict[str, Any]]:
    """The demo rules of one locality: rapid response (end-of-life patients to the team
    listed last first), social care by day then the duty team, GP reviews to the practice in
    surgery hours and the out-of-hours service otherwise, hospitals."""
    ucr = ServiceType.URGENT_COMMUNITY_RESPONSE.value
    return [
        {
            "id": "ucr-end-of-life",
            "service_types": [ucr],
            "cohorts": ["end_of_life"],
            "candidates": list(reversed(_RAPID[locality])),
        },
        {"id": "ucr", "service_types": [ucr], "candidates": _RAPID[locality]},
        {
            "id": "social-care",
            "service_types": [ServiceType.SOCIAL_CARE_ASSESSMENT.value],
            "candidates": [*_COUNCIL[locality], "SCC03"],
        },
        {
            "id": "gp-review-surgery-hours",
            "service_types": [ServiceType.GP_REVIEW.value],
            "hours": {"from": "08:00", "to": "18:30", "days": list(WEEKDAYS)},
            "candidates": _PRACTICES[locality],
        },
        {
            "id": "gp-review-out-of-hours",
            "service_types": [ServiceType.GP_REVIEW.value],
            "candidates": ["L81099"],
        },
        {
            "id": "acute",
            "service_types": [ServiceType.ACUTE_ASSESSMENT.value],
            "candidates": _HOSPITALS[locality],
        },
    ]


MINUTE, HOUR, DAY = 60, 3600, 86400
POLICIES = [
    admin.PolicyData(
        ServiceType.URGENT_COMMUNITY_RESPONSE, None, 30 * MINUTE, 2 * HOUR, 0.75, True
    ),
    admin.PolicyData(ServiceType.ACUTE_ASSESSMENT, None, 30 * MINUTE, 4 * HOUR, 0.75, True),
    admin.PolicyData(ServiceType.ACUTE_ASSESSMENT, Priority.ROUTINE, 4 * HOUR, DAY, 0.75, True),
    admin.PolicyData(ServiceType.SOCIAL_CARE_ASSESSMENT, None, DAY, 7 * DAY, 0.75, False),
    admin.PolicyData(ServiceType.GP_REVIEW, None, DAY, None, 0.75, False),
]


def seed_demo(engine: Engine) -> int:
    """Load the demo data that is missing; returns how many things were added."""
    sessions = session_factory(engine)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessions)

    added = 0
    known = {locality.code for locality in admin.localities(uow())}
    for locality in LOCALITIES:
        if locality.code not in known:
            admin.put_locality(locality, uow())
            added += 1
    known = {row.ods_code for row in admin.organisations(uow())}
    for organisation in ORGANISATIONS:
        if organisation.ods_code not in known:
            admin.create_organisation(organisation, uow())
            added += 1
    with_rules = {row.locality for row in admin.rule_sets(uow())}
    for locality in LOCALITIES:
        if locality.code not in with_rules:
            created = admin.create_rule_set(
                locality.code, rules_for(locality.code), "RX", uow(), "demo rules"
            )
            admin.activate_rule_set(locality.code, created.version, uow())
            added += 1
    known_policies = {(row.service_type, row.priority) for row in admin.policies(uow())}
    for policy in POLICIES:
        key = (policy.service_type.value, policy.priority.value if policy.priority else "*")
        if key not in known_policies:
            admin.put_policy(policy, uow())
            added += 1
    return added


def main() -> None:
    """``python -m routing seed``: load the demo directory, rules and SLA policies."""
    container = bootstrap(get_settings())
    try:
        added = seed_demo(container.engine)
    finally:
        container.engine.dispose()
    logging.getLogger("routing.seed").info("demo directory loaded (%d things added)", added)
