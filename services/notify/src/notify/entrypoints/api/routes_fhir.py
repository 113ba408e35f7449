"""FHIR R4 Subscriptions (R5 Backport IG) at ``/fhir/R4/Subscription``: create, read, search,
update, delete, ``$status`` and ``$events``. Errors are OperationOutcomes (see ``app``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from rx_contracts import new_id
from rx_web.checked_headers import version_of

from ...adapters.fhir import notification_bundle, status_bundle
from ...adapters.notifications import NotificationType
from ...domain.subscription import Channel, Content
from ...service_layer import handlers
from ...service_layer.unit_of_work import StoredResponse
from .deps import CallerDep, ContainerDep, FhirCreate, FhirUpdate, Uow
from .fhir_subscription import (
    FHIR_JSON,
    SubscriptionResource,
    changes_from,
    command_from,
    to_resource,
)
from .idempotency import run_once
from .routes_subscriptions import SubscriptionId


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


router = APIRouter(prefix="/fhir/R4", tags=["fhir"], default_response_class=FhirResponse)

OUTCOMES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or bad identity"},
    403: {"description": "Not for your role or organisation (OperationOutcome)"},
    404: {"description": "No such Subscription, or not yours (OperationOutcome)"},
    422: {"description": "Invalid Subscription (OperationOutcome naming the element)"},
}


def _base(container: Any) -> str:
    return f"{container.settings.public_url.rstrip('/')}/fhir/R4"


def _answer(resource: dict[str, Any], status_code: int = 200, **headers: str) -> FhirResponse:
    return FhirResponse(resource, status_code=status_code, headers=headers)


@router.post(
    "/Subscription",
    status_code=201,
    summary="Create a Subscription (R4 Backport)",
    responses=OUTCOMES,
)
def create_fhir_subscription(
    resource: SubscriptionResource,
    write: FhirCreate,
    container: ContainerDep,
    request: Request,
) -> JSONResponse:
    """Status starts 'requested'; once your endpoint answers the handshake (2xx) it is
    'active'. The answer carries the signing secret once (extension signing-secret)."""
    caller, idempotency_key = write.caller, write.checked()
    cmd = command_from(resource)

    def present(subscription: Any) -> StoredResponse:
        location = f"{_base(container)}/Subscription/{subscription.id}"
        return StoredResponse(
            201,
            to_resource(subscription, with_secret=True),
            {"Location": location, "ETag": f'W/"{subscription.version}"'},
        )

    return run_once(
        request,
        caller,
        idempotency_key,
        resource.model_dump(mode="json", by_alias=True),
        lambda uow: handlers.create_subscription(cmd, caller, uow, container.checks),
        present,
        media_type=FHIR_JSON,
    )


@router.get("/Subscription", summary="Search Subscriptions", responses=OUTCOMES)
def search_fhir_subscriptions(
    caller: CallerDep,
    uow: Uow,
    container: ContainerDep,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 100,
) -> FhirResponse:
    """Your organisation's FHIR subscriptions (ops: everyone's), as a searchset Bundle."""
    found = [
        s
        for s in handlers.list_subscriptions(caller, uow, None, count)
        if s.channel is Channel.FHIR
    ]
    base = _base(container)
    return _answer(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "entry": [
                {
                    "fullUrl": f"{base}/Subscription/{s.id}",
                    "resource": to_resource(s),
                    "search": {"mode": "match"},
                }
                for s in found
            ],
        }
    )


@router.get("/Subscription/{subscription_id}", summary="Read a Subscription", responses=OUTCOMES)
def read_fhir_subscription(
    subscription_id: SubscriptionId, caller: CallerDep, uow: Uow
) -> FhirResponse:
    subscription = handlers.get_subscription(subscription_id, caller, uow)
    return _answer(to_resource(subscription), ETag=f'W/"{subscription.version}"')


@router.put(
    "/Subscription/{subscription_id}",
    summary="Update a Subscription",
    responses={**OUTCOMES, 412: {"description": "If-Match names an old version"}},
)
def update_fhir_subscription(
    subscription_id: SubscriptionId,
    resource: SubscriptionResource,
    write: FhirUpdate,
    uow: Uow,
    container: ContainerDep,
) -> FhirResponse:
    """Change the endpoint, payload, filters, heartbeat or headers, or set status 'off' or
    'active' (after an error). The topic cannot change."""
    caller, if_match = write.caller, write.checked()
    version = version_of(if_match) if if_match else None
    current = handlers.get_subscription(subscription_id, caller, uow)
    changes = changes_from(resource, current)
    subscription = (
        handlers.update_subscription(
            subscription_id, caller, version, changes, container.uow(), container.checks
        )
        if changes
        else current
    )
    return _answer(to_resource(subscription), ETag=f'W/"{subscription.version}"')


@router.delete(
    "/Subscription/{subscription_id}",
    status_code=204,
    summary="Delete a Subscription",
    responses=OUTCOMES,
)
def delete_fhir_subscription(
    subscription_id: SubscriptionId, caller: CallerDep, uow: Uow
) -> Response:
    handlers.delete_subscription(subscription_id, caller, uow)
    return Response(status_code=204)


@router.get(
    "/Subscription/{subscription_id}/$status",
    summary="$status: the Subscription's status",
    responses=OUTCOMES,
)
def fhir_subscription_status(
    subscription_id: SubscriptionId, caller: CallerDep, uow: Uow, container: ContainerDep
) -> FhirResponse:
    subscription = handlers.get_subscription(subscription_id, caller, uow)
    settings = container.settings
    return _answer(
        status_bundle(
            subscription, _base(container), settings.referrals_fhir_base, datetime.now(UTC)
        )
    )


@router.get(
    "/Subscription/{subscription_id}/$events",
    summary="$events: fetch events by number",
    responses=OUTCOMES,
)
def fhir_subscription_events(
    subscription_id: SubscriptionId,
    caller: CallerDep,
    uow: Uow,
    container: ContainerDep,
    since: Annotated[int | None, Query(alias="eventsSinceNumber", ge=1)] = None,
    until: Annotated[int | None, Query(alias="eventsUntilNumber", ge=1)] = None,
    content: Annotated[Content | None, Query(description="empty, id-only or full-resource")] = None,
) -> FhirResponse:
    """A history Bundle (type query-event) with the events by number, at most 100 from
    ``eventsSinceNumber``, whatever the subscription's status: what a receiver fetches after
    seeing a gap in the numbers or ``events-since-subscription-start`` ahead of it."""
    subscription, found = handlers.events(subscription_id, caller, uow, since, until)
    if content is not None:
        subscription.content = content
    bundle = notification_bundle(
        subscription,
        NotificationType.QUERY_EVENT,
        found,
        _base(container),
        container.settings.referrals_fhir_base,
        datetime.now(UTC),
        new_id(),
    )
    return _answer(bundle)
