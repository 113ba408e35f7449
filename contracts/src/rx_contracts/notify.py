"""Events the notify service publishes about subscriptions, on ``notify.subscriptions.v1``.

Who subscribed to what, where it is delivered, and every change of a subscription's state, so
the audit log shows who is told of which referrals. Keyed by the subscription id. They carry
no secrets: an endpoint appears as its origin (scheme, host and port) only."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from .events import ODS_CODE, Actor
from .payload import Payload


class SubscriptionState(StrEnum):
    """FHIR Subscription status codes, which plain webhooks share."""

    REQUESTED = "requested"
    """Created; a FHIR subscription waits for its handshake to be answered."""
    ACTIVE = "active"
    """Notifications are delivered."""
    ERROR = "error"
    """The endpoint failed for longer than the retry period; events are kept, not delivered."""
    OFF = "off"
    """Switched off or deleted; no new events are numbered for it."""


class _SubscriptionEvent(Payload):
    subscription_id: str = Field(
        min_length=1,
        max_length=64,
        description="Id of the subscription; also the Kafka key.",
        examples=["0190f0a4-7b8e-7c3d-9a51-2f4f5e1a9c10"],
    )
    organisation: str = Field(
        pattern=ODS_CODE, description="ODS code of the organisation that owns it."
    )
    actor: Actor = Field(description="Who made the change ('RX' when the platform did).")
    occurred_at: datetime = Field(description="When it changed (UTC).")

    @property
    def key(self) -> str:
        """Kafka key: the subscription id, so one subscription's events keep their order."""
        return self.subscription_id


class SubscriptionCreated(_SubscriptionEvent):
    """An organisation subscribed to a topic."""

    EVENT_TYPE: ClassVar[str] = "rx.notify.SubscriptionCreated.v1"

    topic: str = Field(
        description="What it subscribed to.", examples=["referrals-offered"], max_length=64
    )
    kind: str = Field(description="'fhir' (R4 Backport) or 'webhook' (CloudEvents).")
    endpoint_origin: str = Field(
        max_length=300,
        description="Scheme, host and port of the endpoint (no path or query).",
        examples=["https://ehr.example.org:443"],
    )
    content: str = Field(description="Payload content: empty, id-only or full-resource.")
    status: SubscriptionState = Field(description="Status after creation.")


class SubscriptionChanged(_SubscriptionEvent):
    """A subscription's settings or status changed (updated, activated, failed, switched off,
    deleted, secret rotated, events resent)."""

    EVENT_TYPE: ClassVar[str] = "rx.notify.SubscriptionChanged.v1"

    change: str = Field(
        max_length=32,
        description="What happened: updated, activated, errored, off, deleted, "
        "secret-rotated or resent.",
        examples=["errored"],
    )
    status: SubscriptionState = Field(description="Status after the change.")
    changed: list[str] = Field(
        default_factory=list, description="Names of the settings that changed (updated)."
    )
    endpoint_origin: str | None = Field(
        default=None, max_length=300, description="The endpoint's origin after the change."
    )
    resend_from: int | None = Field(
        default=None, ge=1, description="First event number delivered again (resent)."
    )
    reason: str | None = Field(
        default=None,
        max_length=500,
        description="Why, for errored: the last failure (status code or error kind, never "
        "the endpoint's answer).",
    )


NOTIFY_EVENTS: tuple[type[Payload], ...] = (SubscriptionCreated, SubscriptionChanged)
"""The payloads of this module, registered in ``rx_contracts.events.EVENT_TYPES``."""
