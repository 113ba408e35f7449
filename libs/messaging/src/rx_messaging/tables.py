"""Outbox and inbox tables. Every service that produces has an outbox; every consumer an inbox.
Each lives in the service's own database, next to the rows it changes in the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from sqlalchemy import JSON, Column, LargeBinary, Table, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxMessage(SQLModel, table=True):
    """An event waiting to be (or already) published. One row per destination topic."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("event_id", "topic"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(index=True, max_length=64)
    topic: str = Field(max_length=249)
    key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    value: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    headers: list[list[str]] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = Field(default=None, index=True)


class InboxMessage(SQLModel, table=True):
    """An event a consumer group has already applied; a redelivery is then a no-op."""

    __tablename__ = "inbox"

    consumer: str = Field(primary_key=True, max_length=128)
    event_id: str = Field(primary_key=True, max_length=64)
    topic: str = Field(max_length=249)
    partition: int
    offset: int
    processed_at: datetime = Field(default_factory=utcnow)


def tables_of(*models: type[SQLModel]) -> list[Table]:
    """The tables of ``models``, for ``create_all(tables=…)``: each service creates its own
    tables only, even when several services' models are imported in one process (tests)."""
    return [cast(Table, model.__table__) for model in models]  # type: ignore[attr-defined]
