"""Demo directory and rules: a city of four localities (each 30,000–50,000 people), two
organisations of every provider type. ``python -m routing seed`` loads it; loading twice
changes nothing."""

from __future__ import annotations

from rx_contracts import ProviderType, ServiceType
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .adapters.tables import LocalityRow, OrganisationRow, RuleRow

LOCALITIES: dict[str, list[str]] = {
    "central": ["BS1", "BS2", "BS6", "BS8"],
    "east": ["BS5", "BS15", "BS16"],
    "north": ["BS7", "BS10", "BS34"],
    "south": ["BS3", "BS4", "BS13", "BS14"],
}

ORGANISATIONS: list[tuple[str, str, ProviderType, list[str]]] = [
    ("L81001", "Harbourside Medical Practice", ProviderType.PRIMARY_CARE, ["central", "south"]),
    ("L81002", "Eastgate Health Centre", ProviderType.PRIMARY_CARE, ["east", "north"]),
    ("RXA01", "City Urgent Community Response", ProviderType.RAPID_RESPONSE, ["central", "east"]),
    (
        "RXA02",
        "Northside Rapid Response Team",
        ProviderType.RAPID_RESPONSE,
        ["north", "south", "east"],
    ),
    ("SCC01", "City Council Adult Social Care", ProviderType.SOCIAL_CARE, ["central", "east"]),
    ("SCC02", "South and North Care Partnership", ProviderType.SOCIAL_CARE, ["north", "south"]),
    ("RAC01", "City Royal Infirmary", ProviderType.ACUTE, ["central", "east", "south"]),
    ("RAC02", "Northgate General Hospital", ProviderType.ACUTE, ["north", "central"]),
]

RULES: list[tuple[str, ServiceType, ProviderType]] = [
    ("ucr-to-rapid-response", ServiceType.URGENT_COMMUNITY_RESPONSE, ProviderType.RAPID_RESPONSE),
    ("assessment-to-social-care", ServiceType.SOCIAL_CARE_ASSESSMENT, ProviderType.SOCIAL_CARE),
    ("acute-to-hospital", ServiceType.ACUTE_ASSESSMENT, ProviderType.ACUTE),
    ("review-to-gp", ServiceType.GP_REVIEW, ProviderType.PRIMARY_CARE),
]


def seed_demo(engine: Engine) -> int:
    """Insert the demo data that is missing; returns how many rows were added."""
    rows: list[LocalityRow | OrganisationRow | RuleRow] = [
        LocalityRow(postcode_district=d, locality=loc) for loc, ds in LOCALITIES.items() for d in ds
    ]
    rows += [
        OrganisationRow(ods_code=c, name=n, provider_type=t.value, localities=locs)
        for c, n, t, locs in ORGANISATIONS
    ]
    rows += [
        RuleRow(id=i, version=1, service_type=s.value, provider_type=t.value) for i, s, t in RULES
    ]
    added = 0
    with Session(engine) as session:
        for row in rows:
            key = sa_inspect(type(row)).primary_key_from_instance(row)
            if session.get(type(row), tuple(key)) is None:
                session.add(row)
                added += 1
        session.commit()
    return added
