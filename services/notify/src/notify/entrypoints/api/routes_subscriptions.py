"""Plain JSON webhooks: manage subscriptions, fetch missed events, resend, rotate secrets."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from ...adapters.webhook import cloud_event
from ...domain.subscription import Channel, Filters
from ...service_layer import handlers
from ...service_layer.unit_of_work import StoredResponse
from .deps import CallerDep, ChangeDep, ContainerDep, SubmissionDep, Uow
from .idempotency import run_once
from .presenters import etag, to_public, with_secret
from .schemas import (
    EventsPage,
    FiltersIn,
    ResendIn,
    RotateIn,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionPublic,
    SubscriptionUpdate,
)

router = APIRouter(prefix="/subscriptions", tags=["webhooks"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or bad identity"},
    403: {"description": "Not for your role or organisation"},
    404: {"description": "No such subscription, or not yours to see"},
    422: {"description": "Invalid request: the problem names each field and rule broken"},
}
POSTED: dict[int | str, dict[str, Any]] = {
    400: {"description": "Missing or malformed Idempotency-Key"},
    413: {"description": "The body is over the size limit"},
}
SubscriptionId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]


def filters_of(body: FiltersIn) -> Filters:
    return Filters.of(
        [s.value for s in body.status],
        [s.value for s in body.service_type],
        [p.value for p in body.priority],
    )


@router.post(
    "",
    status_code=201,
    response_model=SubscriptionCreated,
    summary="Subscribe a webhook",
    responses={**PROBLEMS, **POSTED},
)
def create_subscription(
    body: SubscriptionCreate,
    submission: SubmissionDep,
    container: ContainerDep,
    request: Request,
) -> JSONResponse:
    """Your organisation's endpoint receives each event of the topic as a CloudEvent, POSTed
    and signed per Standard Webhooks with the ``secret`` in this answer (shown only now)."""
    caller, key = submission.caller, submission.checked_key()
    cmd = handlers.CreateSubscription(
        channel=Channel.WEBHOOK,
        topic=body.topic,
        endpoint=body.endpoint,
        content=body.content,
        filters=filters_of(body.filters),
        headers=body.headers,
        timeout_seconds=body.timeout_seconds,
    )

    def present(subscription: Any) -> StoredResponse:
        location = str(request.url_for("read_subscription", subscription_id=subscription.id))
        return StoredResponse(
            201,
            with_secret(subscription).model_dump(mode="json"),
            {"Location": location, "ETag": etag(subscription)},
        )

    return run_once(
        request,
        caller,
        key,
        body.model_dump(mode="json"),
        lambda uow: handlers.create_subscription(cmd, caller, uow, container.checks),
        present,
    )


@router.get("", response_model=SubscriptionList, summary="List subscriptions", responses=PROBLEMS)
def list_subscriptions(
    caller: CallerDep,
    uow: Uow,
    organisation: Annotated[
        str | None,
        Query(pattern=r"^[A-Z0-9]{3,10}$", description="Ops: one organisation's only."),
    ] = None,
    after: Annotated[str | None, Query(max_length=64, description="From ?next_after.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SubscriptionList:
    """Your organisation's subscriptions, each with its delivery health; ops see everyone's."""
    found = handlers.list_subscriptions(caller, uow, organisation, limit, after)
    return SubscriptionList(
        items=[to_public(s) for s in found],
        next_after=found[-1].id if len(found) == limit else None,
    )


@router.get(
    "/{subscription_id}",
    response_model=SubscriptionPublic,
    summary="Read a subscription and its delivery health",
    responses=PROBLEMS,
)
def read_subscription(
    subscription_id: SubscriptionId, caller: CallerDep, uow: Uow, response: Response
) -> SubscriptionPublic:
    subscription = handlers.get_subscription(subscription_id, caller, uow)
    response.headers["ETag"] = etag(subscription)
    return to_public(subscription)


@router.patch(
    "/{subscription_id}",
    response_model=SubscriptionPublic,
    summary="Change a subscription",
    responses={
        **PROBLEMS,
        412: {"description": "If-Match names an old version"},
        428: {"description": "If-Match missing"},
    },
)
def update_subscription(
    subscription_id: SubscriptionId,
    body: SubscriptionUpdate,
    change: ChangeDep,
    uow: Uow,
    container: ContainerDep,
    response: Response,
) -> SubscriptionPublic:
    """Switch it back on after an error (status 'active'), off, or change its endpoint,
    content, filters or headers."""
    caller, if_match = change.caller, change.checked_version()
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude_none=True)
    if body.filters is not None:
        changes["filters"] = filters_of(body.filters)
    if body.content is not None:
        changes["content"] = body.content
    subscription = handlers.update_subscription(
        subscription_id, caller, if_match, changes, uow, container.checks
    )
    response.headers["ETag"] = etag(subscription)
    return to_public(subscription)


@router.delete(
    "/{subscription_id}", status_code=204, summary="Delete a subscription", responses=PROBLEMS
)
def delete_subscription(subscription_id: SubscriptionId, caller: CallerDep, uow: Uow) -> Response:
    handlers.delete_subscription(subscription_id, caller, uow)
    return Response(status_code=204)


@router.post(
    "/{subscription_id}/secret",
    response_model=SubscriptionCreated,
    summary="Rotate the signing secret",
    responses={**PROBLEMS, **POSTED},
)
def rotate_secret(
    subscription_id: SubscriptionId,
    body: RotateIn,
    submission: SubmissionDep,
    container: ContainerDep,
    request: Request,
) -> JSONResponse:
    """A new secret, in this answer. For the overlap (default a day) each delivery carries
    two signatures, the new secret's and the old one's, so your receiver can switch at its own
    pace; then only the new one signs."""
    caller, key = submission.caller, submission.checked_key()
    seconds = body.overlap_seconds
    overlap = timedelta(
        seconds=container.settings.secret_overlap_seconds if seconds is None else seconds
    )
    return run_once(
        request,
        caller,
        key,
        body.model_dump(mode="json"),
        lambda uow: handlers.rotate_secret(subscription_id, caller, overlap, uow),
        lambda s: StoredResponse(200, with_secret(s).model_dump(mode="json"), {"ETag": etag(s)}),
    )


@router.post(
    "/{subscription_id}/resend",
    response_model=SubscriptionPublic,
    summary="Deliver events again from a number",
    responses={**PROBLEMS, **POSTED},
)
def resend(
    subscription_id: SubscriptionId,
    body: ResendIn,
    submission: SubmissionDep,
    request: Request,
) -> JSONResponse:
    """Every event from ``from_event_number`` on is delivered again, in order, with its
    number and message id unchanged; a subscription in error is switched back on."""
    caller, key = submission.caller, submission.checked_key()
    return run_once(
        request,
        caller,
        key,
        body.model_dump(mode="json"),
        lambda uow: handlers.resend(subscription_id, caller, body.from_event_number, uow),
        lambda s: StoredResponse(200, to_public(s).model_dump(mode="json"), {"ETag": etag(s)}),
    )


@router.get(
    "/{subscription_id}/events",
    response_model=EventsPage,
    summary="Fetch events by number",
    responses=PROBLEMS,
)
def read_events(
    subscription_id: SubscriptionId,
    caller: CallerDep,
    uow: Uow,
    since: Annotated[int | None, Query(ge=1, description="First event number.")] = None,
    until: Annotated[int | None, Query(ge=1, description="Last event number.")] = None,
) -> EventsPage:
    """The events as they were (or would be) delivered, up to 100 from ``since``: for a
    receiver that missed some, whatever the subscription's status."""
    subscription, found = handlers.events(subscription_id, caller, uow, since, until)
    return EventsPage(
        subscription_id=subscription.id,
        status=subscription.status,
        events_since_start=subscription.events_since_start,
        items=[cloud_event(subscription, e) for e in found],
    )
