"""From the domain to what the API answers."""

from __future__ import annotations

from ...domain.subscription import Subscription
from .schemas import FiltersIn, HealthPublic, SubscriptionCreated, SubscriptionPublic


def etag(subscription: Subscription) -> str:
    return f'"{subscription.version}"'


def health(subscription: Subscription) -> HealthPublic:
    return HealthPublic(
        status=subscription.status,
        events_since_start=subscription.events_since_start,
        delivered_through=subscription.delivered_through,
        backlog=subscription.backlog,
        last_success_at=subscription.last_success_at,
        last_attempt_at=subscription.last_attempt_at,
        failing_since=subscription.failing_since,
        next_attempt_at=subscription.next_attempt_at,
        last_error=subscription.last_error,
    )


def to_public(subscription: Subscription) -> SubscriptionPublic:
    f = subscription.filters
    return SubscriptionPublic(
        id=subscription.id,
        organisation=subscription.organisation,
        channel=subscription.channel,
        topic=subscription.topic,
        topic_url=subscription.topic.url,
        endpoint=subscription.endpoint,
        content=subscription.content,
        filters=FiltersIn.model_validate(f.as_dict()),
        header_names=[h.partition(":")[0].strip() for h in subscription.headers],
        timeout_seconds=subscription.timeout_seconds,
        heartbeat_seconds=subscription.heartbeat_seconds,
        max_count=subscription.max_count,
        end=subscription.end_at,
        version=subscription.version,
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
        health=health(subscription),
    )


def with_secret(subscription: Subscription) -> SubscriptionCreated:
    return SubscriptionCreated(**to_public(subscription).model_dump(), secret=subscription.secret)
