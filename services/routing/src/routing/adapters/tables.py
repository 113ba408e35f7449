"""The routing service's tables: directory, rules, decisions, plus outbox and inbox."""

from __future__ import annotations

from datetime import datetime

from rx_messaging.tables import InboxMessage, OutboxMessage, tables_of
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class OrganisationRow(SQLModel, table=True):
    __tablename__ = "organisation"

    ods_code: str = Field(primary_key=True, max_length=10)
    name: str = Field(max_length=200)
    provider_type: str = Field(index=True, max_length=32)
    localities: list[str] = Field(sa_column=Column(JSON, nullable=False))
    active: bool = True


class LocalityRow(SQLModel, table=True):
    """Postcode district → locality."""

    __tablename__ = "locality_district"

    postcode_district: str = Field(primary_key=True, max_length=4)
    locality: str = Field(index=True, max_length=64)


class RuleRow(SQLModel, table=True):
    __tablename__ = "routing_rule"

    id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    active: bool = True
    service_type: str = Field(max_length=64)
    provider_type: str = Field(max_length=32)
    priorities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class DecisionRow(SQLModel, table=True):
    __tablename__ = "routing_decision"

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


class CaseRow(SQLModel, table=True):
    """What routing knows of one referral, from the events alone: enough to route it again
    after a rejection and to forward its later transitions to the right provider topic."""

    __tablename__ = "routing_case"

    referral_id: str = Field(primary_key=True, max_length=64)
    service_type: str = Field(max_length=64)
    priority: str = Field(max_length=16)
    postcode_district: str = Field(max_length=4)
    rejected_by: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    assigned_org: str | None = Field(default=None, max_length=10)
    provider_type: str | None = Field(default=None, max_length=32)
    closed: bool = False


TABLES = tables_of(
    CaseRow, OrganisationRow, LocalityRow, RuleRow, DecisionRow, OutboxMessage, InboxMessage
)
