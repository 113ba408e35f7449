"""Administering the directory, rules and SLA policies. Every change is checked as a whole
(nothing half-written) and moves the directory version in the same transaction, so workers
pick it up at their next event."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rx_contracts import Priority, ProviderType, ServiceType

from ..adapters.tables import OrganisationRow, RuleSetRow, SlaPolicyRow
from ..domain.directory import Locality, Organisation, check_locality, check_organisation
from ..domain.errors import Collector, Conflict, NotFound
from ..domain.rules import RuleSet, parse_rules
from ..domain.sla import SlaPolicy, check_policy
from .unit_of_work import UnitOfWork


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


# ---- localities ---------------------------------------------------------------------------


def localities(uow: UnitOfWork) -> list[Locality]:
    """Every locality with its postcode districts, by code."""
    with uow:
        return uow.directory.localities()


def put_locality(data: LocalityData, uow: UnitOfWork) -> Locality:
    """Create or replace a locality and the postcode districts it covers."""
    with uow:
        errors = Collector()
        owners = uow.directory.district_owners(data.districts)
        check_locality(data.code, data.population, data.districts, owners, errors)
        errors.raise_if_any()
        uow.directory.put_locality(data.code, data.name, data.population, data.districts)
        uow.commit()
        stored = uow.directory.locality(data.code)
    assert stored is not None, "just stored"
    return stored


# ---- organisations --------------------------------------------------------------------------


def organisations(
    uow: UnitOfWork, provider_type: str | None = None, locality: str | None = None
) -> list[OrganisationRow]:
    """The provider directory by ODS code, optionally of one type or serving one locality."""
    with uow:
        rows = uow.directory.organisations(provider_type)
    return [r for r in rows if locality is None or locality in r.localities]


def get_organisation(ods_code: str, uow: UnitOfWork) -> OrganisationRow:
    with uow:
        row = uow.directory.organisation(ods_code)
    if row is None:
        raise NotFound(f"no organisation {ods_code}")
    return row


def create_organisation(data: OrganisationData, uow: UnitOfWork) -> OrganisationRow:
    """Add an organisation; 409 if the ODS code is taken."""
    with uow:
        if uow.directory.organisation(data.ods_code) is not None:
            raise Conflict(
                f"organisation {data.ods_code} exists; PUT /organisations/{data.ods_code}"
            )
        return _put_organisation(data, uow)


def replace_organisation(data: OrganisationData, uow: UnitOfWork) -> OrganisationRow:
    """Replace an organisation's details; 404 if there is none with that ODS code."""
    with uow:
        if uow.directory.organisation(data.ods_code) is None:
            raise NotFound(f"no organisation {data.ods_code}")
        return _put_organisation(data, uow)


def _put_organisation(data: OrganisationData, uow: UnitOfWork) -> OrganisationRow:
    """Inside ``uow``: check and store an organisation."""
    errors = Collector()
    known = {locality.code for locality in uow.directory.localities()}
    hours = check_organisation(
        data.ods_code, data.localities, known, data.daily_capacity, data.opening_hours, errors
    )
    errors.raise_if_any()
    row = uow.directory.put_organisation(
        Organisation(
            ods_code=data.ods_code,
            name=data.name,
            provider_type=data.provider_type,
            localities=frozenset(data.localities),
            active=data.active,
            opening_hours=hours,
            daily_capacity=data.daily_capacity,
        )
    )
    uow.commit()
    return row


# ---- rule sets --------------------------------------------------------------------------------


def rule_sets(uow: UnitOfWork, locality: str | None = None) -> list[RuleSetRow]:
    """Every version of every locality's rules (or one locality's), oldest first."""
    with uow:
        if locality and uow.directory.locality(locality) is None:
            raise NotFound(f"no locality {locality}")
        return uow.directory.rule_sets(locality)


def get_rule_set(locality: str, version: int, uow: UnitOfWork) -> RuleSetRow:
    with uow:
        row = uow.directory.rule_set(locality, version)
    if row is None:
        raise NotFound(f"locality {locality} has no rule set version {version}")
    return row


def create_rule_set(
    locality: str,
    rules: Sequence[Mapping[str, Any]],
    created_by: str,
    uow: UnitOfWork,
    description: str | None = None,
    now: datetime | None = None,
) -> RuleSetRow:
    """Store a new, inactive version of ``locality``'s rules after checking every rule."""
    with uow:
        if uow.directory.locality(locality) is None:
            raise NotFound(f"no locality {locality}")
        errors = Collector()
        parsed = parse_rules(rules, locality, uow.directory.current().organisations, errors)
        errors.raise_if_any()
        row = uow.directory.add_rule_set(
            RuleSet(locality, 0, parsed), created_by, description, now or datetime.now(UTC)
        )
        uow.commit()
    return row


def activate_rule_set(
    locality: str, version: int, uow: UnitOfWork, now: datetime | None = None
) -> RuleSetRow:
    """Make ``version`` the locality's active rules (the previous one stops being active)."""
    with uow:
        row = uow.directory.rule_set(locality, version)
        if row is None:
            raise NotFound(f"locality {locality} has no rule set version {version}")
        uow.directory.activate_rule_set(row, now or datetime.now(UTC))
        uow.commit()
    return row


# ---- SLA policies ------------------------------------------------------------------------------


def policies(uow: UnitOfWork) -> list[SlaPolicyRow]:
    with uow:
        return uow.directory.policies()


def put_policy(data: PolicyData, uow: UnitOfWork) -> SlaPolicyRow:
    """Create or replace the policy of a service type and priority (None: every priority
    without a policy of its own). New clocks use it; running clocks keep their deadlines."""
    errors = Collector()
    check_policy(
        data.accept_within_seconds,
        data.respond_within_seconds,
        data.warn_at_fraction,
        data.auto_reroute,
        errors,
    )
    errors.raise_if_any()
    policy = SlaPolicy(
        service_type=data.service_type,
        priority=data.priority,
        accept_within=_seconds(data.accept_within_seconds),
        respond_within=_seconds(data.respond_within_seconds),
        warn_at_fraction=data.warn_at_fraction,
        auto_reroute=data.auto_reroute,
    )
    with uow:
        row = uow.directory.put_policy(policy)
        uow.commit()
    return row


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)
