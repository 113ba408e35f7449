"""Administering the directory, rules and SLA policies. Every change is checked as a whole
(nothing half-written) and moves the directory version in the same transaction, so workers
pick it up at their next event. Every change that alters something publishes a
RoutingConfigChanged (who, what, before and after) in that transaction too, for the audit
chain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rx_contracts import (
    Actor,
    AdminAction,
    AdminSubject,
    Priority,
    ProviderType,
    RoutingConfigChanged,
    ServiceType,
)
from rx_contracts.topics import ROUTING_ADMIN

from ..adapters.tables import OrganisationRow, RuleSetRow, SlaPolicyRow
from ..domain.admin_change import PLATFORM, config_change
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


def put_locality(data: LocalityData, uow: UnitOfWork, by: Actor = PLATFORM) -> Locality:
    """Create or replace a locality and the postcode districts it covers."""
    with uow:
        errors = Collector()
        owners = uow.directory.district_owners(data.districts)
        check_locality(data.code, data.population, data.districts, owners, errors)
        errors.raise_if_any()
        before = uow.directory.locality(data.code)
        uow.directory.put_locality(data.code, data.name, data.population, data.districts)
        stored = uow.directory.locality(data.code)
        assert stored is not None, "just stored"
        _record(
            uow,
            config_change(
                AdminSubject.LOCALITY,
                data.code,
                _locality_fields(before),
                _locality_fields(stored) or {},
                by,
                datetime.now(UTC),
            ),
        )
        uow.commit()
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


def create_organisation(
    data: OrganisationData, uow: UnitOfWork, by: Actor = PLATFORM
) -> OrganisationRow:
    """Add an organisation; 409 if the ODS code is taken."""
    with uow:
        if uow.directory.organisation(data.ods_code) is not None:
            raise Conflict(
                f"organisation {data.ods_code} exists; PUT /organisations/{data.ods_code}"
            )
        return _put_organisation(data, uow, None, by)


def replace_organisation(
    data: OrganisationData, uow: UnitOfWork, by: Actor = PLATFORM
) -> OrganisationRow:
    """Replace an organisation's details; 404 if there is none with that ODS code."""
    with uow:
        existing = uow.directory.organisation(data.ods_code)
        if existing is None:
            raise NotFound(f"no organisation {data.ods_code}")
        return _put_organisation(data, uow, _organisation_fields(existing), by)


def _put_organisation(
    data: OrganisationData, uow: UnitOfWork, before: dict[str, Any] | None, by: Actor
) -> OrganisationRow:
    """Inside ``uow``: check and store an organisation (``before``: its fields until now)."""
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
    after = _organisation_fields(row)
    _record(
        uow,
        config_change(
            AdminSubject.ORGANISATION, data.ods_code, before, after, by, datetime.now(UTC)
        ),
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
    by: Actor | None = None,
) -> RuleSetRow:
    """Store a new, inactive version of ``locality``'s rules after checking every rule.
    ``by`` defaults to the organisation ``created_by``."""
    at = now or datetime.now(UTC)
    with uow:
        if uow.directory.locality(locality) is None:
            raise NotFound(f"no locality {locality}")
        errors = Collector()
        parsed = parse_rules(rules, locality, uow.directory.current().organisations, errors)
        errors.raise_if_any()
        row = uow.directory.add_rule_set(RuleSet(locality, 0, parsed), created_by, description, at)
        after = {"version": row.version, "description": description, "rules": row.rules}
        actor = by or Actor(organisation=created_by)
        _record(uow, config_change(AdminSubject.RULE_SET, locality, None, after, actor, at))
        uow.commit()
    return row


def activate_rule_set(
    locality: str,
    version: int,
    uow: UnitOfWork,
    now: datetime | None = None,
    by: Actor = PLATFORM,
) -> RuleSetRow:
    """Make ``version`` the locality's active rules (the previous one stops being active)."""
    at = now or datetime.now(UTC)
    with uow:
        row = uow.directory.rule_set(locality, version)
        if row is None:
            raise NotFound(f"locality {locality} has no rule set version {version}")
        live = [r.version for r in uow.directory.rule_sets(locality) if r.active]
        uow.directory.activate_rule_set(row, at)
        _record(
            uow,
            config_change(
                AdminSubject.RULE_SET,
                locality,
                {"active_version": live[0] if live else None},
                {"active_version": version},
                by,
                at,
                AdminAction.ACTIVATED,
            ),
        )
        uow.commit()
    return row


# ---- SLA policies ------------------------------------------------------------------------------


def policies(uow: UnitOfWork) -> list[SlaPolicyRow]:
    with uow:
        return uow.directory.policies()


def put_policy(data: PolicyData, uow: UnitOfWork, by: Actor = PLATFORM) -> SlaPolicyRow:
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
    key = f"{data.service_type.value}/{data.priority.value if data.priority else '*'}"
    with uow:
        before = _policy_fields(uow.directory.policy(data.service_type, data.priority))
        row = uow.directory.put_policy(policy)
        after = _policy_fields(row) or {}
        _record(
            uow,
            config_change(AdminSubject.SLA_POLICY, key, before, after, by, datetime.now(UTC)),
        )
        uow.commit()
    return row


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


# ---- what a change records -----------------------------------------------------------------


def _record(uow: UnitOfWork, change: RoutingConfigChanged | None) -> None:
    """Inside ``uow``: stage the change's event with the change itself (if it changed
    anything)."""
    if change is not None:
        uow.publish(change, (ROUTING_ADMIN,), change.changed_at)


def _locality_fields(locality: Locality | None) -> dict[str, Any] | None:
    if locality is None:
        return None
    return {
        "name": locality.name,
        "population": locality.population,
        "districts": sorted(locality.districts),
    }


def _organisation_fields(row: OrganisationRow) -> dict[str, Any]:
    """Taken before a change too: the row is changed in place."""
    return row.model_dump(mode="json", exclude={"ods_code", "updated_at"})


def _policy_fields(row: SlaPolicyRow | None) -> dict[str, Any] | None:
    """The policy's settings (not its version, which moves on every write)."""
    if row is None:
        return None
    return row.model_dump(
        mode="json", exclude={"service_type", "priority", "version", "updated_at"}
    )
