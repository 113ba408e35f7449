"""What one delivery carries, whatever its format: the subscription, the events (each with its
number) and the referral's state after each. Built from rows by the service layer; rendered by
``fhir`` and ``webhook``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class NotificationType(StrEnum):
    """FHIR notification types; webhooks only ever carry events."""

    HANDSHAKE = "handshake"
    HEARTBEAT = "heartbeat"
    EVENT = "event-notification"
    QUERY_STATUS = "query-status"
    QUERY_EVENT = "query-event"


@dataclass(frozen=True)
class NumberedEvent:
    """One event as numbered for one subscription."""

    number: int
    message_id: str
    """Same on every attempt to deliver it (webhook-id, FHIR Bundle id)."""
    event_id: str
    type: str
    kind: str
    referral_id: str
    sequence: int | None
    source: str
    time: datetime
    data: dict[str, Any]
    state: dict[str, Any]
