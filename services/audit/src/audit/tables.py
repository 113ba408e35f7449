"""The audit log: append-only, hash-chained. Each entry's hash covers the previous hash, so an
edited, deleted, inserted or reordered entry breaks every hash after it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rx_messaging.tables import InboxMessage, tables_of
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"

    sequence: int = Field(primary_key=True)
    event_id: str = Field(unique=True, max_length=64)
    topic: str = Field(max_length=249)
    partition: int
    offset: int
    type: str = Field(index=True, max_length=200)
    referral_id: str = Field(index=True, max_length=64)
    actor_org: str | None = Field(default=None, index=True, max_length=10)
    occurred_at: datetime = Field(index=True)
    recorded_at: datetime = Field(default_factory=utcnow)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    payload_digest: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class ChainHead(SQLModel, table=True):
    """One row: the newest entry. Updating it serialises appends, so the chain stays linear
    even with several consumer processes."""

    __tablename__ = "audit_chain_head"

    id: int = Field(default=1, primary_key=True)
    sequence: int = 0
    hash: str = Field(default="0" * 64, max_length=64)


TABLES = tables_of(AuditEntry, ChainHead, InboxMessage)
