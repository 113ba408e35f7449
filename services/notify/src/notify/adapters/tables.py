"""The notify service's tables (its own database; no other service reads it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rx_messaging.tables import InboxMessage, OutboxMessage, tables_of
from sqlalchemy import JSON, Column, Index, Table
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


PENDING = "pending"
"""An event's placement while it waits, unplaced, for a subscription that may hear of its
referral."""


class SubscriptionRow(SQLModel, table=True):
    """A subscription, its event counter and its delivery state (see domain.subscription)."""

    __tablename__ = "notify_subscription"

    id: str = Field(primary_key=True, max_length=64)
    organisation: str = Field(index=True, max_length=10)
    channel: str = Field(max_length=16)
    topic: str = Field(max_length=64)
    status: str = Field(index=True, max_length=16)
    endpoint: str = Field(max_length=2000)
    content: str = Field(max_length=16)
    filters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    headers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    heartbeat_seconds: int | None = None
    timeout_seconds: int = 10
    max_count: int = 1
    end_at: datetime | None = None
    secret: str = Field(max_length=128)
    previous_secret: str | None = Field(default=None, max_length=128)
    previous_secret_until: datetime | None = None
    events_since_start: int = 0
    delivered_through: int = 0
    failures: int = 0
    next_attempt_at: datetime | None = None
    failing_since: datetime | None = None
    last_error: str | None = Field(default=None, max_length=500)
    last_success_at: datetime | None = None
    last_attempt_at: datetime | None = None
    handshake_due: bool = False
    heartbeat_due_at: datetime | None = None
    reason: str | None = Field(default=None, max_length=500)
    deleted_at: datetime | None = None
    version: int = 1
    created_at: datetime
    updated_at: datetime
    lease_owner: str | None = Field(default=None, max_length=128)
    """The delivery worker delivering it now (one request in flight per subscription)."""
    lease_until: datetime | None = None


class NotificationRow(SQLModel, table=True):
    """One event numbered for one subscription: ``event_number`` is gapless per subscription,
    ``id`` the message id every delivery attempt of it carries (webhook-id)."""

    __tablename__ = "notify_notification"

    subscription_id: str = Field(
        primary_key=True, foreign_key="notify_subscription.id", max_length=64
    )
    event_number: int = Field(primary_key=True)
    id: str = Field(max_length=64, unique=True)
    event_id: str = Field(index=True, foreign_key="notify_event.event_id", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class LifecycleEventRow(SQLModel, table=True):
    """A referral event notify received, once: pending while nobody could hear of it, held
    until its turn, then applied (with its payload and the referral's state after it, which
    its notifications show; neither kept when it was numbered for nobody), or found stale."""

    __tablename__ = "notify_event"

    event_id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    referral_id: str = Field(max_length=64)
    sequence: int | None = None
    """The referral's sequence this event stands at (a clock event: the one it follows)."""
    source: str = Field(max_length=200)
    time: datetime
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    state: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    placement: str = Field(max_length=16)
    """held, apply, late or stale (see domain.referral.Placement), or pending: stored while no
    subscription could hear of anything, placed when one may (``service_layer.ingest``)."""
    received_at: datetime = Field(default_factory=utcnow)
    applied_at: datetime | None = None

    __table_args__ = (Index("ix_notify_event_referral_placement", "referral_id", "placement"),)


class ReferralViewRow(SQLModel, table=True):
    """What notify knows of a referral (domain.referral.ReferralView)."""

    __tablename__ = "notify_referral"

    referral_id: str = Field(primary_key=True, max_length=64)
    referrer_org: str = Field(max_length=10)
    service_type: str = Field(max_length=64)
    priority: str = Field(max_length=16)
    status: str = Field(max_length=32)
    assigned_org: str | None = Field(default=None, max_length=10)
    provider_type: str | None = Field(default=None, max_length=32)
    applied_sequence: int = 1
    entries: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    decided: int = 0
    held: int = 0
    """Events of it waiting for their predecessor (0: nothing to look for)."""
    updated_at: datetime = Field(default_factory=utcnow)


class IdempotencyRow(SQLModel, table=True):
    """The first response to a POST with an Idempotency-Key, replayed for retries."""

    __tablename__ = "notify_idempotency_key"

    organisation: str = Field(primary_key=True, max_length=10)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)
    status_code: int
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    headers: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


def table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined,no-any-return]


SUBSCRIPTION = table(SubscriptionRow)
NOTIFICATION = table(NotificationRow)
EVENT = table(LifecycleEventRow)
REFERRAL = table(ReferralViewRow)

TABLES = tables_of(
    SubscriptionRow,
    LifecycleEventRow,
    NotificationRow,
    ReferralViewRow,
    IdempotencyRow,
    OutboxMessage,
    InboxMessage,
)
"""Everything this service stores, and nothing another service defines."""
