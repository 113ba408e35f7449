"""FHIR R4 notifications per the Subscriptions R5 Backport IG: ``history`` Bundles whose first
entry is the subscription status (in R4 a ``Parameters`` resource, profile
backport-subscription-status-r4), followed by the events' focus (id-only) or resources
(full-resource).

The focus of a referral event is its ``ServiceRequest`` at the referrals service's FHIR base
(``ServiceRequest/<referral id>``). A full-resource notification carries that ServiceRequest
as of the event, and a ``Task`` describing the step (status, business status, owner, reason,
outcome) as the event's additional context, both built from the event itself: organisations
and codes, the patient by reference only. A receiver reads the referral's details (the patient,
the assignment's own Task) from the referrals service with its own token, which checks it is
entitled. Code systems are the referrals service's (its FHIR face), so codes read the same."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ..domain.subscription import Content, Subscription
from .notifications import NotificationType, NumberedEvent

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
STATUS_PROFILE = BACKPORT + "backport-subscription-status-r4"
NOTIFICATION_PROFILE = BACKPORT + "backport-subscription-notification-r4"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
CODES = "https://referral-exchange.example/fhir/CodeSystem/"
"""The referrals service's FHIR code systems (services share no code, so named again here)."""
SNOMED = "http://snomed.info/sct"
REFERRAL_CATEGORY = {"system": SNOMED, "code": "3457005", "display": "Patient referral"}

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

SERVICE_REQUEST_STATUS = {"completed": "completed", "cancelled": "revoked"}
"""As the referrals service maps them: every other status is 'active'."""


def instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def subscription_url(base: str, subscription: Subscription) -> str:
    return f"{base.rstrip('/')}/Subscription/{subscription.id}"


def focus_url(referrals_base: str, referral_id: str) -> str:
    return f"{referrals_base.rstrip('/')}/ServiceRequest/{referral_id}"


def context_url(event: NumberedEvent) -> str:
    """The event's Task (additional context): a resource of notifications only, under a UUID
    derived from the message id (the same on every attempt, distinct from the Bundle's)."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'task:' + event.message_id)}"


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
        if subscription.content is Content.FULL_RESOURCE:
            part.append(
                {"name": "additional-context", "valueReference": {"reference": context_url(event)}}
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
        # One entry per referral, as of its last event here (a focus must resolve to one
        # entry); with full-resource, one Task per event besides.
        last = {event.referral_id: event for event in events}
        for event in events:
            if last[event.referral_id] is event:
                entry: dict[str, Any] = {
                    "fullUrl": focus_url(referrals_base, event.referral_id),
                    "request": {"method": "PUT", "url": f"ServiceRequest/{event.referral_id}"},
                    "response": {"status": "200"},
                }
                if subscription.content is Content.FULL_RESOURCE:
                    entry["resource"] = service_request(event)
                entries.append(entry)
            if subscription.content is Content.FULL_RESOURCE:
                entries.append(
                    {
                        "fullUrl": context_url(event),
                        "resource": task(event, referrals_base),
                        "request": {"method": "POST", "url": "Task"},
                        "response": {"status": "201"},
                    }
                )
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": instant(now),
        "entry": entries,
    }


def _organisation(code: str) -> dict[str, Any]:
    """A reference to an organisation by its ODS code, as the referrals service writes it."""
    return {"type": "Organization", "identifier": {"system": ODS_SYSTEM, "value": code}}


def service_request(event: NumberedEvent) -> dict[str, Any]:
    """The referral as of ``event``: what the event tells (status, service, priority, the
    organisations), the patient by reference only."""
    state = event.state
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": event.referral_id,
        "status": SERVICE_REQUEST_STATUS.get(state.get("status", ""), "active"),
        "intent": "order",
        "category": [{"coding": [REFERRAL_CATEGORY]}],
        "priority": state.get("priority", "routine"),
        "code": {"coding": [{"system": CODES + "service-type", "code": state["service_type"]}]},
        "subject": {"reference": f"Patient/{event.referral_id}"},
        "requester": _organisation(state["referrer_org"]),
    }
    version = event.data.get("version")
    if version is not None:
        resource["meta"] = {"versionId": str(version), "lastUpdated": instant(event.time)}
    if state.get("provider_type"):
        resource["performerType"] = {
            "coding": [{"system": CODES + "provider-type", "code": state["provider_type"]}]
        }
    if state.get("assigned_org"):
        resource["performer"] = [_organisation(state["assigned_org"])]
    return resource


def task(event: NumberedEvent, referrals_base: str) -> dict[str, Any]:
    """The step ``event`` records, as a Task (status, business status, owner, reason,
    outcome) about the referral's ServiceRequest."""
    state = event.state
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "status": TASK_STATUS.get(state.get("status", ""), "requested"),
        "businessStatus": {"coding": [{"system": CODES + "referral-event", "code": event.kind}]},
        "intent": "order",
        "priority": state.get("priority", "routine"),
        "focus": {"reference": focus_url(referrals_base, event.referral_id)},
        "for": {"reference": f"Patient/{event.referral_id}"},
        "lastModified": instant(event.time),
        "requester": _organisation(state["referrer_org"]),
    }
    if state.get("assigned_org"):
        resource["owner"] = _organisation(state["assigned_org"])
    reason = event.data.get("reason_code") if event.kind == "rejected" else None
    if reason:
        resource["statusReason"] = {
            "coding": [{"system": CODES + "rejection-reason", "code": reason}]
        }
    outcome = event.data.get("outcome")
    if outcome:
        resource["output"] = [
            {
                "type": {"coding": [{"system": CODES + "task-output", "code": "outcome"}]},
                "valueCodeableConcept": {
                    "coding": [{"system": CODES + "outcome", "code": outcome}]
                },
            }
        ]
    return resource


def status_bundle(
    subscription: Subscription, fhir_base: str, referrals_base: str, now: datetime
) -> dict[str, Any]:
    """What ``$status`` answers: a searchset Bundle holding the status."""
    status = {
        "id": f"{subscription.id}-status",
        **status_parameters(
            subscription, NotificationType.QUERY_STATUS, [], fhir_base, referrals_base
        ),
    }
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
