"""Administering the directory, rules and SLA policies. Every change is validated as a whole
(nothing half-written) and moves the directory version in the same transaction, so workers
pick it up at their next event."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from rx_contracts import Priority, ProviderType, ServiceType
from sqlalchemy import func, update
from sqlmodel import Session, SQLModel, col, select

from ..adapters import directory_store
from ..adapters.tables import (
    LocalityRow,
    OrganisationRow,
    PostcodeDistrictRow,
    RuleSetRow,
    SlaPolicyRow,
    utcnow,
)
from ..domain.directory import LOCALITY_CODE, ODS_CODE, POSTCODE_DISTRICT, parse_opening_hours
from ..domain.errors import Collector, Conflict, NotFound
from ..domain.rules import parse_rules

T = TypeVar("T", bound=SQLModel)


@dataclass(frozen=True)
class LocalityData:
    code: str
    name: str
    population: int
    districts: Sequence[str]


@dataclass(frozen=True)
class OrganisationData:
    ods_code: str
    name: str
    provider_type: ProviderType
    localities: Sequence[str]
    opening_hours: Mapping[str, Sequence[str]] | None = None
    daily_capacity: int | None = None
    active: bool = True


@dataclass(frozen=True)
class PolicyData:
    service_type: ServiceType
    priority: Priority | None
    accept_within_seconds: int | None
    respond_within_seconds: int | None
    warn_at_fraction: float | None = 0.75
    auto_reroute: bool = False


def _saved(session: Session, row: T) -> T:
    """Commit an administrative change with a new directory version (workers re-read)."""
    directory_store.bump(session)
    session.commit()
    session.refresh(row)
    return row


# ---- localities ---------------------------------------------------------------------------


def put_locality(session: Session, data: LocalityData) -> LocalityRow:
    """Create or replace a locality and the postcode districts it covers."""
    errors = Collector()
    if not LOCALITY_CODE.fullmatch(data.code):
        errors.add("code", "locality_code", "lower-case letters, digits and '-', 2-64 long")
    if data.population < 0:
        errors.add("population", "non_negative", "population cannot be negative")
    taken = {
        row.district: row.locality
        for row in session.exec(
            select(PostcodeDistrictRow).where(col(PostcodeDistrictRow.district).in_(data.districts))
        )
    }
    for index, district in enumerate(data.districts):
        where = f"districts.{index}"
        if not POSTCODE_DISTRICT.fullmatch(district):
            errors.add(where, "postcode_district", f"{district!r} is not an outward code like BS5")
        elif taken.get(district, data.code) != data.code:
            errors.add(where, "district_taken", f"{district} is in {taken[district]} already")
    if len(set(data.districts)) != len(data.districts):
        errors.add("districts", "duplicate_district", "a district is listed twice")
    errors.raise_if_any()
    row = session.get(LocalityRow, data.code) or LocalityRow(code=data.code, name="", population=0)
    row.name, row.population = data.name, data.population
    session.add(row)
    for old in session.exec(
        select(PostcodeDistrictRow).where(PostcodeDistrictRow.locality == data.code)
    ):
        if old.district not in data.districts:
            session.delete(old)
    session.flush()
    for district in data.districts:
        if district not in taken:
            session.add(PostcodeDistrictRow(district=district, locality=data.code))
    directory_store.bump(session)
    session.commit()
    return row


def districts_of(session: Session, locality: str) -> list[str]:
    return sorted(
        r.district
        for r in session.exec(
            select(PostcodeDistrictRow).where(PostcodeDistrictRow.locality == locality)
        )
    )


# ---- organisations --------------------------------------------------------------------------


def create_organisation(session: Session, data: OrganisationData) -> OrganisationRow:
    """Add an organisation; 409 if the ODS code is taken."""
    if session.get(OrganisationRow, data.ods_code) is not None:
        raise Conflict(f"organisation {data.ods_code} exists; PUT /organisations/{data.ods_code}")
    return _save_organisation(
        session,
        OrganisationRow(ods_code=data.ods_code, name="", provider_type="", localities=[]),
        data,
    )


def replace_organisation(session: Session, data: OrganisationData) -> OrganisationRow:
    """Replace an organisation's details; 404 if there is none with that ODS code."""
    row = session.get(OrganisationRow, data.ods_code)
    if row is None:
        raise NotFound(f"no organisation {data.ods_code}")
    return _save_organisation(session, row, data)


def _save_organisation(
    session: Session, row: OrganisationRow, data: OrganisationData
) -> OrganisationRow:
    errors = Collector()
    if not ODS_CODE.fullmatch(data.ods_code):
        errors.add("ods_code", "ods_code", "an ODS code is 3 to 10 upper-case letters and digits")
    known = {r.code for r in directory_store.localities(session)}
    for index, locality in enumerate(data.localities):
        if locality not in known:
            errors.add(f"localities.{index}", "unknown_locality", f"{locality!r} is not a locality")
    if not data.localities:
        errors.add("localities", "localities_required", "an organisation serves a locality")
    if data.daily_capacity is not None and data.daily_capacity < 0:
        errors.add("daily_capacity", "non_negative", "capacity cannot be negative")
    hours = parse_opening_hours(data.opening_hours, errors)
    errors.raise_if_any()
    row.name = data.name
    row.provider_type = data.provider_type.value
    row.localities = sorted(set(data.localities))
    row.opening_hours = hours.as_json() if hours is not None else None
    row.daily_capacity = data.daily_capacity
    row.active = data.active
    row.updated_at = utcnow()
    session.add(row)
    return _saved(session, row)


def get_organisation(session: Session, ods_code: str) -> OrganisationRow:
    row = session.get(OrganisationRow, ods_code)
    if row is None:
        raise NotFound(f"no organisation {ods_code}")
    return row


# ---- rule sets --------------------------------------------------------------------------------


def create_rule_set(
    session: Session,
    locality: str,
    rules: Sequence[Mapping[str, Any]],
    created_by: str,
    description: str | None = None,
    now: datetime | None = None,
) -> RuleSetRow:
    """Store a new, inactive version of ``locality``'s rules after checking every rule."""
    if session.get(LocalityRow, locality) is None:
        raise NotFound(f"no locality {locality}")
    directory = directory_store.load(session, directory_store.version(session))
    errors = Collector()
    parsed = parse_rules(rules, locality, directory.organisations, errors)
    errors.raise_if_any()
    latest = session.exec(
        select(func.max(RuleSetRow.version)).where(RuleSetRow.locality == locality)
    ).one()
    row = RuleSetRow(
        locality=locality,
        version=(latest or 0) + 1,
        rules=[rule.as_json() for rule in parsed],
        description=description,
        created_by=created_by,
        created_at=now or utcnow(),
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def activate_rule_set(
    session: Session, locality: str, version: int, now: datetime | None = None
) -> RuleSetRow:
    """Make ``version`` the locality's active rules (the previous one stops being active)."""
    row = session.get(RuleSetRow, (locality, version))
    if row is None:
        raise NotFound(f"locality {locality} has no rule set version {version}")
    session.execute(
        update(RuleSetRow)
        .where(col(RuleSetRow.locality) == locality, col(RuleSetRow.version) != version)
        .values(active=False)
    )
    row.active = True
    row.activated_at = now or utcnow()
    session.add(row)
    return _saved(session, row)


def rule_sets(session: Session, locality: str | None = None) -> list[RuleSetRow]:
    query = select(RuleSetRow).order_by(col(RuleSetRow.locality), col(RuleSetRow.version))
    if locality:
        if session.get(LocalityRow, locality) is None:
            raise NotFound(f"no locality {locality}")
        query = query.where(RuleSetRow.locality == locality)
    return list(session.exec(query))


def get_rule_set(session: Session, locality: str, version: int) -> RuleSetRow:
    row = session.get(RuleSetRow, (locality, version))
    if row is None:
        raise NotFound(f"locality {locality} has no rule set version {version}")
    return row


# ---- SLA policies ------------------------------------------------------------------------------


def put_policy(session: Session, data: PolicyData) -> SlaPolicyRow:
    """Create or replace the policy of a service type and priority (None: every priority
    without a policy of its own). New clocks use it; running clocks keep their deadlines."""
    errors = Collector()
    for name in ("accept_within_seconds", "respond_within_seconds"):
        value = getattr(data, name)
        if value is not None and value < 1:
            errors.add(name, "positive", "a time limit is at least 1 second")
    if data.accept_within_seconds is None and data.respond_within_seconds is None:
        errors.add(
            "accept_within_seconds", "limit_required", "set an acceptance or a response limit"
        )
    if data.warn_at_fraction is not None and not 0 < data.warn_at_fraction < 1:
        errors.add("warn_at_fraction", "fraction", "warn at a fraction strictly between 0 and 1")
    if data.auto_reroute and data.accept_within_seconds is None:
        errors.add(
            "auto_reroute", "needs_acceptance_limit", "re-routing needs an acceptance time limit"
        )
    errors.raise_if_any()
    priority = data.priority.value if data.priority else "*"
    row = session.get(SlaPolicyRow, (data.service_type.value, priority))
    if row is None:
        row = SlaPolicyRow(service_type=data.service_type.value, priority=priority, version=0)
    row.accept_within_seconds = data.accept_within_seconds
    row.respond_within_seconds = data.respond_within_seconds
    row.warn_at_fraction = data.warn_at_fraction
    row.auto_reroute = data.auto_reroute
    row.version += 1
    row.updated_at = utcnow()
    session.add(row)
    return _saved(session, row)


def policies(session: Session) -> list[SlaPolicyRow]:
    return list(
        session.exec(
            select(SlaPolicyRow).order_by(
                col(SlaPolicyRow.service_type), col(SlaPolicyRow.priority)
            )
        )
    )
