"""FHIR R4 notifications per the Subscriptions R5 Backport IG: ``history`` Bundles whose first
entry is the subscription status (in R4 a ``Parameters`` resource, profile
backport-subscription-status-r4), followed by the events' focus (id-only) or resources
(full-resource).

The focus of a referral event is its ``Task`` at the referrals service's FHIR base. A
full-resource notification carries that Task as of the event, built from the event itself:
status, owner, requester, priority, reason and outcome codes, and no patient details; a
receiver reads the ServiceRequest (with the patient) from the referrals service with its own
token, which checks it is entitled."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..domain.subscription import Content, Subscription
from .notifications import NotificationType, NumberedEvent

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
STATUS_PROFILE = BACKPORT + "backport-subscription-status-r4"
NOTIFICATION_PROFILE = BACKPORT + "backport-subscription-notification-r4"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
EVENT_SYSTEM = "http://referral-exchange.example.org/fhir/CodeSystem/referral-event"
REASON_SYSTEM = "http://referral-exchange.example.org/fhir/CodeSystem/rejection-reason"
OUTCOME_SYSTEM = "http://referral-exchange.example.org/fhir/CodeSystem/referral-outcome"

TASK_STATUS = {
    "submitted": "requested",
    "routed": "received",
    "accepted": "accepted",
    "in_progress": "in-progress",
    "completed": "completed",
    "cancelled": "cancelled",
    "unroutable": "on-hold",
}
"""The lifecycle's statuses as FHIR Task status."""


def instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def subscription_url(base: str, subscription: Subscription) -> str:
    return f"{base.rstrip('/')}/Subscription/{subscription.id}"


def focus_url(referrals_base: str, referral_id: str) -> str:
    return f"{referrals_base.rstrip('/')}/Task/{referral_id}"


def status_parameters(
    subscription: Subscription,
    kind: NotificationType,
    events: list[NumberedEvent],
    fhir_base: str,
    referrals_base: str,
    events_since_start: int | None = None,
) -> dict[str, Any]:
    """The SubscriptionStatus of a notification, as R4 Parameters."""
    parameters: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {"reference": subscription_url(fhir_base, subscription)},
        },
        {"name": "topic", "valueCanonical": subscription.topic.url},
        {"name": "status", "valueCode": subscription.status.value},
        {"name": "type", "valueCode": kind.value},
        {
            "name": "events-since-subscription-start",
            "valueString": str(
                subscription.events_since_start
                if events_since_start is None
                else events_since_start
            ),
        },
    ]
    for event in events:
        part: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(event.number)},
            {"name": "timestamp", "valueInstant": instant(event.time)},
        ]
        if subscription.content is not Content.EMPTY:
            part.append(
                {
                    "name": "focus",
                    "valueReference": {"reference": focus_url(referrals_base, event.referral_id)},
                }
            )
        parameters.append({"name": "notification-event", "part": part})
    if subscription.last_error and kind is NotificationType.QUERY_STATUS:
        parameters.append(
            {"name": "error", "valueCodeableConcept": {"text": subscription.last_error}}
        )
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": parameters,
    }


def notification_bundle(
    subscription: Subscription,
    kind: NotificationType,
    events: list[NumberedEvent],
    fhir_base: str,
    referrals_base: str,
    now: datetime,
    bundle_id: str,
) -> dict[str, Any]:
    """A notification Bundle (type ``history``): the status first, then one entry per event
    (a focus reference for id-only, the Task as of the event for full-resource)."""
    status = status_parameters(subscription, kind, events, fhir_base, referrals_base)
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{bundle_id}",
            "resource": {"id": bundle_id, **status},
            "request": {
                "method": "GET",
                "url": f"{subscription_url(fhir_base, subscription)}/$status",
            },
            "response": {"status": "200"},
        }
    ]
    if subscription.content is not Content.EMPTY:
        for event in events:
            url = focus_url(referrals_base, event.referral_id)
            entry: dict[str, Any] = {
                "fullUrl": url,
                "request": {"method": "PUT", "url": f"Task/{event.referral_id}"},
                "response": {"status": "200"},
            }
            if subscription.content is Content.FULL_RESOURCE:
                entry["resource"] = task(event, referrals_base)
            entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": instant(now),
        "entry": entries,
    }


def _organisation(code: str) -> dict[str, Any]:
    return {"identifier": {"system": ODS_SYSTEM, "value": code}}


def task(event: NumberedEvent, referrals_base: str) -> dict[str, Any]:
    """The referral's Task as of ``event`` (no patient details)."""
    state = event.state
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": event.referral_id,
        "status": TASK_STATUS.get(state.get("status", ""), "requested"),
        "businessStatus": {"coding": [{"system": EVENT_SYSTEM, "code": event.kind}]},
        "intent": "order",
        "priority": state.get("priority", "routine"),
        "focus": {"reference": f"{referrals_base.rstrip('/')}/ServiceRequest/{event.referral_id}"},
        "lastModified": instant(event.time),
        "requester": _organisation(state["referrer_org"]),
    }
    if event.sequence is not None:
        resource["meta"] = {"versionId": str(event.sequence)}
    if state.get("assigned_org"):
        resource["owner"] = _organisation(state["assigned_org"])
    reason = event.data.get("reason_code") if event.kind == "rejected" else None
    if reason:
        resource["statusReason"] = {"coding": [{"system": REASON_SYSTEM, "code": reason}]}
    outcome = event.data.get("outcome")
    if outcome:
        resource["output"] = [
            {
                "type": {"text": "outcome"},
                "valueCodeableConcept": {"coding": [{"system": OUTCOME_SYSTEM, "code": outcome}]},
            }
        ]
    return resource


def status_bundle(
    subscription: Subscription, fhir_base: str, referrals_base: str, now: datetime
) -> dict[str, Any]:
    """What ``$status`` answers: a searchset Bundle holding the status."""
    status = status_parameters(
        subscription, NotificationType.QUERY_STATUS, [], fhir_base, referrals_base
    )
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": instant(now),
        "total": 1,
        "entry": [
            {
                "fullUrl": f"{subscription_url(fhir_base, subscription)}/$status",
                "resource": status,
                "search": {"mode": "match"},
            }
        ],
    }
