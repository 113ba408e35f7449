"""One delivery's request: body and headers, in the subscription's format, signed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rx_contracts import new_id

from ..domain.subscription import Channel, Subscription
from . import fhir, webhook
from .notifications import NotificationType, NumberedEvent

USER_AGENT = "referral-exchange-notify/1"


@dataclass(frozen=True)
class Bases:
    """Where FHIR references point: this service's base, and the referrals service's."""

    fhir: str
    referrals: str


@dataclass(frozen=True)
class Request:
    message_id: str
    body: bytes
    headers: dict[str, str]


def render(
    subscription: Subscription,
    kind: NotificationType,
    events: list[NumberedEvent],
    bases: Bases,
    now: datetime,
) -> Request:
    """The request for one delivery. Every request is signed per Standard Webhooks (FHIR ones
    too), with the subscription's secrets; the message id of an event is the same on every
    attempt, so a receiver can drop repeats."""
    if subscription.channel is Channel.WEBHOOK:
        [event] = events
        message_id = event.message_id
        body = webhook.encode(webhook.cloud_event(subscription, event))
        content_type = webhook.CONTENT_TYPE
    else:
        message_id = events[0].message_id if events else new_id()
        bundle = fhir.notification_bundle(
            subscription, kind, events, bases.fhir, bases.referrals, now, message_id
        )
        body = webhook.encode(bundle)
        content_type = "application/fhir+json"
    headers = dict(_custom(subscription))
    headers.update(
        {
            "Content-Type": content_type,
            "User-Agent": USER_AGENT,
            **webhook.signature_headers(message_id, body, subscription.signing_secrets(now), now),
        }
    )
    return Request(message_id, body, headers)


def _custom(subscription: Subscription) -> list[tuple[str, str]]:
    """The subscription's own headers (FHIR channel.header), e.g. an Authorization."""
    found = []
    for line in subscription.headers:
        name, _, value = line.partition(":")
        found.append((name.strip(), value.strip()))
    return found
