"""The administered tables (localities, organisations, rule sets, SLA policies) and the
Directory read from them; the version counter every administrative change moves."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from rx_contracts import Priority, ProviderType, ServiceType
from rx_messaging import fastsql
from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from ..domain.decision import Directory
from ..domain.directory import Locality, Organisation, parse_opening_hours
from ..domain.errors import Collector
from ..domain.rules import RuleSet, parse_rules
from ..domain.sla import SlaPolicy
from .cache import DirectoryCache
from .tables import (
    DirectoryVersionRow,
    LocalityRow,
    OrganisationRow,
    PostcodeDistrictRow,
    RuleSetRow,
    SlaPolicyRow,
    table,
    utcnow,
)

_VERSIONS = table(DirectoryVersionRow)
_VERSION = sa_select(_VERSIONS.c.version).where(_VERSIONS.c.id == 1)


class DirectoryRepository:
    def __init__(self, session: Session, cache: DirectoryCache) -> None:
        self.session = session
        self._cache = cache
        self.changed = False
        """Whether something routing decides with was changed (the version must move)."""

    # ---- the Directory routing decides with -------------------------------------------------

    def current(self) -> Directory:
        """The directory as of this transaction (kept in memory until its version moves)."""
        return self._cache.get(self.session, self.version, self.load)

    def version(self) -> int:
        """The directory's version; 0 for a database nobody has loaded anything into."""
        # Built once and run on the driver (rx_messaging.fastsql): the consumer reads it once
        # per batch, which at low rates is once per event.
        found = fastsql.execute(self.session.connection(), _VERSION, {}).fetchone()
        return int(found[0] or 0) if found is not None else 0

    def bump(self) -> None:
        """Move the version on, in this transaction (with the change it announces)."""
        updated = self.session.execute(
            update(DirectoryVersionRow)
            .where(col(DirectoryVersionRow.id) == 1)
            .values(version=DirectoryVersionRow.version + 1)
        )
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            self.session.add(DirectoryVersionRow(id=1, version=1))
            self.session.flush()

    def load(self, at_version: int) -> Directory:
        organisations = {
            row.ods_code: _organisation(row) for row in self.session.exec(select(OrganisationRow))
        }
        active = self.session.exec(select(RuleSetRow).where(col(RuleSetRow.active)))
        return Directory(
            version=at_version,
            districts={
                r.district: r.locality for r in self.session.exec(select(PostcodeDistrictRow))
            },
            organisations=organisations,
            rule_sets={row.locality: _rule_set(row, organisations) for row in active},
            policies=tuple(_policy(row) for row in self.session.exec(select(SlaPolicyRow))),
        )

    # ---- localities -------------------------------------------------------------------------

    def localities(self) -> list[Locality]:
        """Every locality with its postcode districts, by code."""
        districts: dict[str, set[str]] = {}
        for row in self.session.exec(select(PostcodeDistrictRow)):
            districts.setdefault(row.locality, set()).add(row.district)
        return [
            Locality(row.code, row.name, row.population, frozenset(districts.get(row.code, ())))
            for row in self.session.exec(select(LocalityRow).order_by(col(LocalityRow.code)))
        ]

    def locality(self, code: str) -> Locality | None:
        row = self.session.get(LocalityRow, code)
        if row is None:
            return None
        query = select(PostcodeDistrictRow.district).where(PostcodeDistrictRow.locality == code)
        return Locality(row.code, row.name, row.population, frozenset(self.session.exec(query)))

    def district_owners(self, districts: Sequence[str]) -> dict[str, str]:
        """Which locality each of ``districts`` already belongs to (those that belong to one)."""
        query = select(PostcodeDistrictRow).where(col(PostcodeDistrictRow.district).in_(districts))
        return {row.district: row.locality for row in self.session.exec(query)}

    def put_locality(self, code: str, name: str, population: int, districts: Sequence[str]) -> None:
        """Create or replace a locality; its districts become exactly ``districts``."""
        row = self.session.get(LocalityRow, code) or LocalityRow(code=code, name="", population=0)
        row.name, row.population = name, population
        self.session.add(row)
        kept = set()
        for old in self.session.exec(
            select(PostcodeDistrictRow).where(PostcodeDistrictRow.locality == code)
        ):
            if old.district in districts:
                kept.add(old.district)
            else:
                self.session.delete(old)
        self.session.flush()
        for district in districts:
            if district not in kept:
                self.session.add(PostcodeDistrictRow(district=district, locality=code))
        self.changed = True

    # ---- organisations ----------------------------------------------------------------------

    def organisation(self, ods_code: str) -> OrganisationRow | None:
        return self.session.get(OrganisationRow, ods_code)

    def organisations(self, provider_type: str | None = None) -> list[OrganisationRow]:
        """By ODS code, optionally of one provider type."""
        query = select(OrganisationRow).order_by(col(OrganisationRow.ods_code))
        if provider_type:
            query = query.where(OrganisationRow.provider_type == provider_type)
        return list(self.session.exec(query))

    def put_organisation(self, organisation: Organisation) -> OrganisationRow:
        """Create or replace an organisation's row."""
        row = self.session.get(OrganisationRow, organisation.ods_code) or OrganisationRow(
            ods_code=organisation.ods_code, name="", provider_type="", localities=[]
        )
        hours = organisation.opening_hours
        row.name = organisation.name
        row.provider_type = organisation.provider_type.value
        row.localities = sorted(organisation.localities)
        row.opening_hours = hours.as_json() if hours is not None else None
        row.daily_capacity = organisation.daily_capacity
        row.active = organisation.active
        row.updated_at = utcnow()
        self.session.add(row)
        self.changed = True
        return row

    # ---- rule sets --------------------------------------------------------------------------

    def rule_set(self, locality: str, version: int) -> RuleSetRow | None:
        return self.session.get(RuleSetRow, (locality, version))

    def rule_sets(self, locality: str | None = None) -> list[RuleSetRow]:
        """Every version of every locality's rules (or one locality's), oldest first."""
        query = select(RuleSetRow).order_by(col(RuleSetRow.locality), col(RuleSetRow.version))
        if locality:
            query = query.where(RuleSetRow.locality == locality)
        return list(self.session.exec(query))

    def add_rule_set(
        self,
        rule_set: RuleSet,
        created_by: str,
        description: str | None,
        created_at: datetime,
    ) -> RuleSetRow:
        """Store ``rule_set``'s rules as the locality's next version, inactive."""
        latest = self.session.exec(
            select(func.max(RuleSetRow.version)).where(RuleSetRow.locality == rule_set.locality)
        ).one()
        row = RuleSetRow(
            locality=rule_set.locality,
            version=(latest or 0) + 1,
            rules=[rule.as_json() for rule in rule_set.rules],
            description=description,
            created_by=created_by,
            created_at=created_at,
        )
        self.session.add(row)
        return row

    def activate_rule_set(self, row: RuleSetRow, at: datetime) -> None:
        """Make ``row`` its locality's active rules (the previous one stops being active)."""
        self.session.execute(
            update(RuleSetRow)
            .where(col(RuleSetRow.locality) == row.locality, col(RuleSetRow.version) != row.version)
            .values(active=False)
        )
        row.active = True
        row.activated_at = at
        self.session.add(row)
        self.changed = True

    # ---- SLA policies -----------------------------------------------------------------------

    def policies(self) -> list[SlaPolicyRow]:
        query = select(SlaPolicyRow).order_by(
            col(SlaPolicyRow.service_type), col(SlaPolicyRow.priority)
        )
        return list(self.session.exec(query))

    def policy(self, service_type: ServiceType, priority: Priority | None) -> SlaPolicyRow | None:
        """The policy stored for ``service_type`` and ``priority`` (None: ``*``), if any."""
        return self.session.get(
            SlaPolicyRow, (service_type.value, priority.value if priority else "*")
        )

    def put_policy(self, policy: SlaPolicy) -> SlaPolicyRow:
        """Create or replace the policy of its service type and priority; its version moves
        on."""
        priority = policy.priority.value if policy.priority else "*"
        row = self.session.get(SlaPolicyRow, (policy.service_type.value, priority))
        if row is None:
            row = SlaPolicyRow(service_type=policy.service_type.value, priority=priority, version=0)
        row.accept_within_seconds = _whole_seconds(policy.accept_within)
        row.respond_within_seconds = _whole_seconds(policy.respond_within)
        row.warn_at_fraction = policy.warn_at_fraction
        row.auto_reroute = policy.auto_reroute
        row.version += 1
        row.updated_at = utcnow()
        self.session.add(row)
        self.changed = True
        return row


def _organisation(row: OrganisationRow) -> Organisation:
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


def _policy(row: SlaPolicyRow) -> SlaPolicy:
    return SlaPolicy(
        service_type=ServiceType(row.service_type),
        priority=None if row.priority == "*" else Priority(row.priority),
        accept_within=_seconds(row.accept_within_seconds),
        respond_within=_seconds(row.respond_within_seconds),
        warn_at_fraction=row.warn_at_fraction,
        auto_reroute=row.auto_reroute,
        version=row.version,
    )


def _rule_set(row: RuleSetRow, organisations: dict[str, Organisation]) -> RuleSet:
    """A stored rule set. It was validated when uploaded; a candidate deleted since is kept
    (routing passes it over), so parsing errors are not raised here."""
    rules = parse_rules(row.rules, row.locality, organisations, Collector())
    return RuleSet(row.locality, row.version, rules)


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _whole_seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())
