"""Plain JSON webhooks: one CloudEvents 1.0 event per request (structured mode,
``application/cloudevents+json``), signed per Standard Webhooks.

The CloudEvent keeps the platform event's ``id``, ``source`` and ``type``, so a receiver of
several subscriptions sees one event id for one happening. Extension attributes carry what is
per subscription: ``subscriptionid``, ``eventnumber`` (gapless per subscription) and the
referral's ``sequence``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from ..domain.subscription import Content, Subscription
from .notifications import NumberedEvent

CONTENT_TYPE = "application/cloudevents+json"
SCHEMA_PREFIX = "urn:referral-exchange:schema:"


def cloud_event(subscription: Subscription, event: NumberedEvent) -> dict[str, Any]:
    """The CloudEvent for one numbered event, with the data the subscription's content asks
    for: none (empty), the referral id (id-only), or the event and the referral's state after
    it (full-resource). Never patient details: events carry none."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.event_id,
        "source": event.source,
        "type": event.type,
        "subject": event.referral_id,
        "time": event.time.isoformat().replace("+00:00", "Z"),
        "subscriptionid": subscription.id,
        "eventnumber": event.number,
        "topic": subscription.topic.value,
        "event": event.kind,
    }
    if event.sequence is not None:
        body["sequence"] = event.sequence
    if subscription.content is Content.ID_ONLY:
        body["datacontenttype"] = "application/json"
        body["data"] = {"referral_id": event.referral_id}
    elif subscription.content is Content.FULL_RESOURCE:
        body["datacontenttype"] = "application/json"
        body["dataschema"] = SCHEMA_PREFIX + event.type
        body["data"] = {**event.data, "referral": event.state}
    return body


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def signature_headers(
    message_id: str, body: bytes, secrets: list[str], now: datetime
) -> dict[str, str]:
    """Standard Webhooks headers: ``webhook-id`` (the same on every attempt), the attempt's
    ``webhook-timestamp``, and one ``v1,<signature>`` per signing secret (two while a rotated
    secret's overlap lasts), space-separated."""
    text = body.decode()
    signatures = [Webhook(secret).sign(message_id, now, text) for secret in secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
