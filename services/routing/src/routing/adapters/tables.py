"""The routing service's tables: directory, rules, SLA policies (administered), what routing
learnt of each referral, its decisions and clocks (from events), plus outbox and inbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from rx_messaging.tables import InboxMessage, OutboxMessage, tables_of
from sqlalchemy import JSON, Column, Index, Table
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def table(model: type[SQLModel]) -> Table:
    """A model's Core table, for statements on the consumer's hot path that need none of the
    ORM's bookkeeping (run through ``session.connection()``, in the session's transaction)."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


# ---- administered: the directory, rules and policies -------------------------------------


class DirectoryVersionRow(SQLModel, table=True):
    """One row whose counter moves on every administrative change, so workers can keep the
    directory, rules and policies in memory and re-read them only when it moved."""

    __tablename__ = "directory_version"

    id: int = Field(default=1, primary_key=True)
    version: int = 0


class LocalityRow(SQLModel, table=True):
    __tablename__ = "locality"

    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    population: int


class PostcodeDistrictRow(SQLModel, table=True):
    """Postcode district (outward code) → locality."""

    __tablename__ = "postcode_district"

    district: str = Field(primary_key=True, max_length=4)
    locality: str = Field(index=True, foreign_key="locality.code", max_length=64)


class OrganisationRow(SQLModel, table=True):
    __tablename__ = "organisation"

    ods_code: str = Field(primary_key=True, max_length=10)
    name: str = Field(max_length=200)
    provider_type: str = Field(index=True, max_length=32)
    localities: list[str] = Field(sa_column=Column(JSON, nullable=False))
    opening_hours: dict[str, list[str]] | None = Field(default=None, sa_column=Column(JSON))
    """Local (Europe/London) hours per weekday; null: always open."""
    daily_capacity: int | None = None
    active: bool = True
    updated_at: datetime = Field(default_factory=utcnow)


class RuleSetRow(SQLModel, table=True):
    """One version of one locality's rules. At most one version per locality is active."""

    __tablename__ = "rule_set"

    locality: str = Field(primary_key=True, foreign_key="locality.code", max_length=64)
    version: int = Field(primary_key=True)
    active: bool = False
    rules: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    description: str | None = Field(default=None, max_length=500)
    created_by: str = Field(max_length=10)
    created_at: datetime = Field(default_factory=utcnow)
    activated_at: datetime | None = None


class SlaPolicyRow(SQLModel, table=True):
    """Deadlines per service type and priority ('*': the service type's other priorities)."""

    __tablename__ = "sla_policy"

    service_type: str = Field(primary_key=True, max_length=64)
    priority: str = Field(primary_key=True, max_length=16)
    accept_within_seconds: int | None = None
    respond_within_seconds: int | None = None
    warn_at_fraction: float | None = None
    auto_reroute: bool = False
    version: int = 1
    updated_at: datetime = Field(default_factory=utcnow)


# ---- learnt from events: cases, decisions, load, clocks ----------------------------------


class CaseRow(SQLModel, table=True):
    """What routing knows of one referral, from the events alone: enough to route it again,
    to forward its transitions to the right provider topic, and to replay it."""

    __tablename__ = "routing_case"

    referral_id: str = Field(primary_key=True, max_length=64)
    service_type: str = Field(max_length=64)
    priority: str = Field(max_length=16)
    postcode_district: str = Field(max_length=4)
    cohorts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    submitted_at: datetime = Field(index=True)
    declined_by: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Organisations that rejected it or let its acceptance clock run out."""
    assigned_org: str | None = Field(default=None, max_length=10)
    provider_type: str | None = Field(default=None, max_length=32)
    attempt: int = 0
    """Number of routing decisions so far."""
    sequence: int | None = None
    """The referral's sequence as far as routing has seen it, its decisions included (null:
    a case opened before routing kept it, until its next event)."""
    decision_id: str | None = Field(default=None, max_length=64)
    """The latest decision."""
    correlation_id: str | None = Field(default=None, max_length=64)
    """Of the submission, carried by the platform's own events about this referral."""
    status: str = Field(default="open", max_length=16)
    """open | accepted | started | unroutable | closed."""


class DecisionRow(SQLModel, table=True):
    """One routing decision and, once known, what the organisation did with it."""

    __tablename__ = "routing_decision"
    __table_args__ = (Index("ix_routing_decision_decided_at", "decided_at"),)

    id: str = Field(primary_key=True, max_length=64)
    referral_id: str = Field(index=True, max_length=64)
    attempt: int
    outcome: str = Field(max_length=16)  # routed | unroutable
    assigned_org: str | None = Field(default=None, max_length=10)
    provider_type: str | None = Field(default=None, max_length=32)
    locality: str | None = Field(default=None, max_length=64)
    rule_id: str | None = Field(default=None, max_length=64)
    rule_version: int | None = None
    reason: str | None = Field(default=None, max_length=500)
    decided_at: datetime
    event_id: str = Field(max_length=64)
    accepted_at: datetime | None = None
    released_at: datetime | None = None
    release: str | None = Field(default=None, max_length=32)
    """How the organisation let it go: rejected | redirected | rerouted | acceptance-timeout."""


class OrganisationLoadRow(SQLModel, table=True):
    """Referrals given to an organisation on a local day and not declined by it."""

    __tablename__ = "organisation_load"

    ods_code: str = Field(primary_key=True, max_length=10)
    day: str = Field(primary_key=True, max_length=10)  # ISO date, Europe/London
    assigned: int = 0


class ClockRow(SQLModel, table=True):
    """One SLA clock. ``next_fire_at`` (indexed) is when the clock worker must next look at
    it; null once it stopped or breached, so the worker's query reads only live clocks."""

    __tablename__ = "sla_clock"

    id: str = Field(primary_key=True, max_length=128)
    referral_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=16)  # acceptance | response
    attempt: int | None = None
    assigned_org: str | None = Field(default=None, max_length=10)
    provider_type: str | None = Field(default=None, max_length=32)
    service_type: str = Field(max_length=64)
    priority: str = Field(max_length=16)
    policy_id: str = Field(max_length=96)
    auto_reroute: bool = False
    correlation_id: str | None = Field(default=None, max_length=64)
    started_at: datetime
    deadline_at: datetime
    warn_at: datetime | None = None
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = Field(default=None, max_length=32)
    next_fire_at: datetime | None = Field(default=None, index=True)


TABLES = tables_of(
    DirectoryVersionRow,
    LocalityRow,
    PostcodeDistrictRow,
    OrganisationRow,
    RuleSetRow,
    SlaPolicyRow,
    CaseRow,
    DecisionRow,
    OrganisationLoadRow,
    ClockRow,
    OutboxMessage,
    InboxMessage,
)
