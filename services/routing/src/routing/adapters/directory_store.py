"""Reading the administered tables into a Directory, and moving its version counter."""

from __future__ import annotations

from datetime import timedelta

from rx_contracts import Priority, ProviderType, ServiceType
from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlmodel import Session, col, select

from ..domain.directory import Organisation, parse_opening_hours
from ..domain.errors import Collector
from ..domain.model import Directory
from ..domain.rules import RuleSet, parse_rules
from ..domain.sla import SlaPolicy
from .tables import (
    DirectoryVersionRow,
    LocalityRow,
    OrganisationRow,
    PostcodeDistrictRow,
    RuleSetRow,
    SlaPolicyRow,
    table,
)


def version(session: Session) -> int:
    """The directory's version; 0 for a database nobody has loaded anything into."""
    versions = table(DirectoryVersionRow)
    value = (
        session.connection()
        .execute(sa_select(versions.c.version).where(versions.c.id == 1))
        .scalar()
    )
    return int(value or 0)


def bump(session: Session) -> int:
    """Move the version on, in the caller's transaction (with the change it announces)."""
    updated = session.execute(
        update(DirectoryVersionRow)
        .where(col(DirectoryVersionRow.id) == 1)
        .values(version=DirectoryVersionRow.version + 1)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        session.add(DirectoryVersionRow(id=1, version=1))
        session.flush()
    return version(session)


def organisation(row: OrganisationRow) -> Organisation:
    """The domain organisation of a stored row (stored rows were validated on the way in)."""
    return Organisation(
        ods_code=row.ods_code,
        name=row.name,
        provider_type=ProviderType(row.provider_type),
        localities=frozenset(row.localities),
        active=row.active,
        opening_hours=parse_opening_hours(row.opening_hours, Collector()),
        daily_capacity=row.daily_capacity,
    )


def policy(row: SlaPolicyRow) -> SlaPolicy:
    return SlaPolicy(
        service_type=ServiceType(row.service_type),
        priority=None if row.priority == "*" else Priority(row.priority),
        accept_within=_seconds(row.accept_within_seconds),
        respond_within=_seconds(row.respond_within_seconds),
        warn_at_fraction=row.warn_at_fraction,
        auto_reroute=row.auto_reroute,
        version=row.version,
    )


def rule_set(row: RuleSetRow, organisations: dict[str, Organisation]) -> RuleSet:
    """A stored rule set. It was validated when uploaded; a candidate deleted since is kept
    (routing passes it over), so parsing errors are not raised here."""
    rules = parse_rules(row.rules, row.locality, organisations, Collector())
    return RuleSet(row.locality, row.version, rules)


def load(session: Session, at_version: int) -> Directory:
    organisations = {
        row.ods_code: organisation(row) for row in session.exec(select(OrganisationRow))
    }
    active = session.exec(select(RuleSetRow).where(col(RuleSetRow.active)))
    return Directory(
        version=at_version,
        districts={r.district: r.locality for r in session.exec(select(PostcodeDistrictRow))},
        organisations=organisations,
        rule_sets={row.locality: rule_set(row, organisations) for row in active},
        policies=tuple(policy(row) for row in session.exec(select(SlaPolicyRow))),
    )


def localities(session: Session) -> list[LocalityRow]:
    return list(session.exec(select(LocalityRow).order_by(col(LocalityRow.code))))


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)
