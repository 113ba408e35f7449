"""Use cases of managing subscriptions. Each takes a unit of work and commits it once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rx_contracts import new_id

from ..adapters.notifications import NumberedEvent
from ..adapters.sender import Resolver, resolve
from ..domain.caller import Caller
from ..domain.endpoint import EndpointPolicy, parse_endpoint
from ..domain.errors import InvalidSubscription, NotPermitted, SubscriptionNotFound
from ..domain.subscription import Channel, Content, Filters, Subscription
from ..domain.topics import Topic
from .unit_of_work import UnitOfWork

MAX_EVENTS_PAGE = 100
"""Most events one ``$events`` call returns; ask again from the next number for more."""


@dataclass(frozen=True)
class Checks:
    """What an endpoint is checked against when a subscription is made or changed."""

    policy: EndpointPolicy
    resolver: Resolver

    def endpoint(self, url: str) -> None:
        """The URL's form, and the addresses its host resolves to now (the delivery worker
        checks again before every connection)."""
        endpoint = parse_endpoint(url, self.policy)
        try:
            addresses = resolve(endpoint, self.resolver)
        except OSError as exc:
            raise InvalidSubscription(
                "endpoint", "unresolvable", f"{endpoint.host} does not resolve ({exc})"
            ) from exc
        problem = self.policy.check_addresses(endpoint.scheme, addresses)
        if problem:
            raise InvalidSubscription("endpoint", "address", problem)


@dataclass(frozen=True)
class CreateSubscription:
    channel: Channel
    topic: Topic
    endpoint: str
    content: Content = Content.ID_ONLY
    filters: Filters = field(default_factory=Filters)
    headers: list[str] = field(default_factory=list)
    heartbeat_seconds: int | None = None
    timeout_seconds: int = 10
    max_count: int = 1
    end_at: datetime | None = None


def create_subscription(
    cmd: CreateSubscription,
    caller: Caller,
    uow: UnitOfWork,
    checks: Checks,
    now: datetime | None = None,
) -> Subscription:
    """Subscribe the caller's organisation; the answer is the only time (with a rotation) the
    signing secret is shown."""
    subscription = Subscription.create(
        subscription_id=new_id(),
        caller=caller,
        channel=cmd.channel,
        topic=cmd.topic,
        endpoint=cmd.endpoint,
        content=cmd.content,
        filters=cmd.filters,
        policy=checks.policy,
        now=now or datetime.now(UTC),
        headers=cmd.headers,
        heartbeat_seconds=cmd.heartbeat_seconds,
        timeout_seconds=cmd.timeout_seconds,
        max_count=cmd.max_count,
        end_at=cmd.end_at,
    )
    checks.endpoint(subscription.endpoint)
    with uow:
        uow.subscriptions.add(subscription)
        uow.commit(subscription)
    return subscription


def _owned(
    subscription_id: str, caller: Caller, uow: UnitOfWork, *, for_update: bool = False
) -> Subscription:
    subscription = uow.subscriptions.get(subscription_id, for_update=for_update)
    if subscription is None:
        raise SubscriptionNotFound(f"no subscription {subscription_id}")
    subscription.check_access(caller)
    return subscription


def get_subscription(subscription_id: str, caller: Caller, uow: UnitOfWork) -> Subscription:
    with uow:
        return _owned(subscription_id, caller, uow)


def list_subscriptions(
    caller: Caller,
    uow: UnitOfWork,
    organisation: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> list[Subscription]:
    """A provider system sees its organisation's subscriptions; ops see every organisation's
    (or one's, with ``organisation``)."""
    if not caller.is_ops:
        if not caller.is_provider:
            raise NotPermitted("only provider systems and ops have subscriptions to list")
        if organisation not in (None, caller.organisation):
            raise NotPermitted("a provider system lists its own organisation's subscriptions")
        organisation = caller.organisation
    with uow:
        return uow.subscriptions.listing(organisation, limit, after)


def update_subscription(
    subscription_id: str,
    caller: Caller,
    if_match: int | None,
    changes: dict[str, Any],
    uow: UnitOfWork,
    checks: Checks,
    now: datetime | None = None,
) -> Subscription:
    if "endpoint" in changes:
        checks.endpoint(changes["endpoint"])
    with uow:
        subscription = _owned(subscription_id, caller, uow, for_update=True)
        subscription.update(caller, if_match, checks.policy, now or datetime.now(UTC), **changes)
        uow.commit(subscription)
    return subscription


def delete_subscription(
    subscription_id: str, caller: Caller, uow: UnitOfWork, now: datetime | None = None
) -> None:
    with uow:
        subscription = _owned(subscription_id, caller, uow, for_update=True)
        subscription.delete(caller, now or datetime.now(UTC))
        uow.commit()


def rotate_secret(
    subscription_id: str,
    caller: Caller,
    overlap: timedelta,
    uow: UnitOfWork,
    now: datetime | None = None,
) -> Subscription:
    with uow:
        subscription = _owned(subscription_id, caller, uow, for_update=True)
        subscription.rotate_secret(caller, now or datetime.now(UTC), overlap)
        uow.commit(subscription)
    return subscription


def resend(
    subscription_id: str,
    caller: Caller,
    from_number: int,
    uow: UnitOfWork,
    now: datetime | None = None,
) -> Subscription:
    """Deliver the subscription's events again from ``from_number`` on, same numbers and ids."""
    with uow:
        subscription = _owned(subscription_id, caller, uow, for_update=True)
        subscription.resend_from(caller, from_number, now or datetime.now(UTC))
        uow.commit(subscription)
    return subscription


def events(
    subscription_id: str,
    caller: Caller,
    uow: UnitOfWork,
    since: int | None = None,
    until: int | None = None,
) -> tuple[Subscription, list[NumberedEvent]]:
    """The subscription's events by number (at most MAX_EVENTS_PAGE from ``since``): what a
    receiver that missed some fetches, whatever the subscription's status."""
    first = 1 if since is None else since
    if first < 1 or (until is not None and until < first):
        raise InvalidSubscription(
            "eventsSinceNumber", "range", "event numbers start at 1 and since ≤ until"
        )
    with uow:
        subscription = _owned(subscription_id, caller, uow)
        last = subscription.events_since_start if until is None else until
        last = min(last, first + MAX_EVENTS_PAGE - 1)
        found = uow.subscriptions.notifications(subscription.id, first, last)
    return subscription, found
