"""The Subscription aggregate: what an organisation subscribed to, where it is delivered, and
how far delivery got. Pure Python: it enforces the rules and records the events each change
causes (``changes``); the unit of work writes those to the outbox.

Per subscription, events are numbered 1, 2, 3… with no gaps (``events_since_start`` counts
them; the number is given in the same transaction as the notification is stored). Delivery
goes in number order, one request in flight: ``delivered_through`` is the highest number the
endpoint acknowledged. A failing endpoint is retried with backoff; after the retry period the
subscription turns ``error`` and its events wait, fetchable with ``$events``, until the owner
or ops resend them."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rx_contracts import (
    Actor,
    Payload,
    Priority,
    ReferralStatus,
    ServiceType,
    SubscriptionChanged,
    SubscriptionCreated,
)
from rx_contracts import SubscriptionState as Status

from .caller import Caller
from .endpoint import Endpoint, EndpointPolicy, parse_endpoint
from .errors import InvalidSubscription, NotPermitted, StaleVersion, SubscriptionNotFound
from .topics import TOPIC_KINDS, Kind, Topic

PLATFORM = Actor(organisation="RX")

MAX_HEADERS = 5
MAX_COUNT = 100
MIN_HEARTBEAT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 60
_HEADER = re.compile(r"^([A-Za-z0-9-]{1,64}):[ \t]*([\x20-\x7e]{1,1024})$")
_RESERVED_HEADERS = re.compile(
    r"^(host|content-.*|transfer-encoding|connection|upgrade|te|trailer|keep-alive|"
    r"proxy-.*|webhook-.*|ce-.*|cookie)$",
    re.IGNORECASE,
)


class Channel(StrEnum):
    """How notifications are shaped."""

    FHIR = "fhir"
    """FHIR R4 Backport: history Bundles with a SubscriptionStatus Parameters resource."""
    WEBHOOK = "webhook"
    """CloudEvents 1.0 JSON (structured mode), one event per request."""


class Content(StrEnum):
    """How much of each event a notification carries (FHIR payload content codes)."""

    EMPTY = "empty"
    ID_ONLY = "id-only"
    FULL_RESOURCE = "full-resource"


@dataclass(frozen=True)
class Filters:
    """Events pass when the referral's status, service type and priority after the event are
    among those listed (an empty list lets every value through)."""

    statuses: tuple[str, ...] = ()
    service_types: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        statuses: list[str] | tuple[str, ...] = (),
        service_types: list[str] | tuple[str, ...] = (),
        priorities: list[str] | tuple[str, ...] = (),
    ) -> Filters:
        """Checked against the platform's vocabularies; duplicates dropped, order kept."""
        return cls(
            _codes("filters.status", statuses, ReferralStatus),
            _codes("filters.service_type", service_types, ServiceType),
            _codes("filters.priority", priorities, Priority),
        )

    def passes(self, state: dict[str, Any]) -> bool:
        return (
            (not self.statuses or state["status"] in self.statuses)
            and (not self.service_types or state["service_type"] in self.service_types)
            and (not self.priorities or state["priority"] in self.priorities)
        )

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "status": list(self.statuses),
            "service_type": list(self.service_types),
            "priority": list(self.priorities),
        }


def _codes(field_name: str, values: Any, vocabulary: Any) -> tuple[str, ...]:
    known = {member.value for member in vocabulary}
    found: list[str] = []
    for value in values:
        if value not in known:
            raise InvalidSubscription(
                field_name, "unknown_code", f"{value!r} is not one of {sorted(known)}"
            )
        if value not in found:
            found.append(value)
    return tuple(found)


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often a failing endpoint is tried again."""

    retry_for: timedelta
    first: float
    cap: float


@dataclass
class Subscription:
    id: str
    organisation: str
    channel: Channel
    topic: Topic
    endpoint: str
    content: Content
    filters: Filters
    secret: str
    created_at: datetime
    updated_at: datetime
    status: Status = Status.ACTIVE
    headers: tuple[str, ...] = ()
    heartbeat_seconds: int | None = None
    timeout_seconds: int = 10
    max_count: int = 1
    end_at: datetime | None = None
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None
    events_since_start: int = 0
    delivered_through: int = 0
    failures: int = 0
    next_attempt_at: datetime | None = None
    failing_since: datetime | None = None
    last_error: str | None = None
    last_success_at: datetime | None = None
    last_attempt_at: datetime | None = None
    handshake_due: bool = False
    heartbeat_due_at: datetime | None = None
    reason: str | None = None
    deleted_at: datetime | None = None
    version: int = 1
    changes: list[Payload] = field(default_factory=list, repr=False)
    """Events recorded since loading; the unit of work stages them in the outbox."""

    # ---- creation and settings -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        subscription_id: str,
        caller: Caller,
        channel: Channel,
        topic: Topic,
        endpoint: str,
        content: Content,
        filters: Filters,
        policy: EndpointPolicy,
        now: datetime,
        headers: list[str] | None = None,
        heartbeat_seconds: int | None = None,
        timeout_seconds: int = 10,
        max_count: int = 1,
        end_at: datetime | None = None,
    ) -> Subscription:
        """A provider system subscribes for its own organisation. A webhook is active at once;
        a FHIR subscription is ``requested`` until its endpoint answers the handshake."""
        if not caller.is_provider:
            raise NotPermitted("only a provider system subscribes, for its own organisation")
        checked = parse_endpoint(endpoint, policy)
        subscription = cls(
            id=subscription_id,
            organisation=caller.organisation,
            channel=channel,
            topic=topic,
            endpoint=checked.url,
            content=content,
            filters=filters,
            secret=new_secret(),
            created_at=now,
            updated_at=now,
            status=Status.REQUESTED if channel is Channel.FHIR else Status.ACTIVE,
            headers=_headers(headers or []),
            heartbeat_seconds=_heartbeat(heartbeat_seconds),
            timeout_seconds=_timeout(timeout_seconds),
            max_count=_max_count(max_count, channel),
            end_at=end_at,
            handshake_due=channel is Channel.FHIR,
        )
        subscription._schedule_heartbeat(now)
        subscription.changes.append(
            SubscriptionCreated(
                subscription_id=subscription.id,
                organisation=subscription.organisation,
                actor=caller.actor,
                occurred_at=now,
                topic=topic.value,
                kind=channel.value,
                endpoint_origin=checked.origin,
                content=content.value,
                status=subscription.status,
            )
        )
        return subscription

    def check_access(self, caller: Caller) -> None:
        """404 unless the caller's organisation owns it or the caller is ops."""
        if self.deleted_at is not None or not caller.may_see(self.organisation):
            raise SubscriptionNotFound(f"no subscription {self.id}")

    def check_version(self, if_match: int | None) -> None:
        if if_match is not None and if_match != self.version:
            raise StaleVersion(if_match, self.version)

    def update(
        self,
        caller: Caller,
        if_match: int | None,
        policy: EndpointPolicy,
        now: datetime,
        **changes: Any,
    ) -> list[str]:
        """Change settings: endpoint, content, filters, headers, heartbeat_seconds,
        timeout_seconds, max_count, end_at, or status (``active`` to switch a subscription
        that is off or in error back on, ``off`` to stop it). Returns what changed."""
        self.check_access(caller)
        self.check_version(if_match)
        if "endpoint" in changes:
            changes["endpoint"] = parse_endpoint(changes["endpoint"], policy).url
        if "headers" in changes:
            changes["headers"] = _headers(changes["headers"] or [])
        if "heartbeat_seconds" in changes:
            changes["heartbeat_seconds"] = _heartbeat(changes["heartbeat_seconds"])
        if "timeout_seconds" in changes:
            changes["timeout_seconds"] = _timeout(changes["timeout_seconds"])
        if "max_count" in changes:
            changes["max_count"] = _max_count(changes["max_count"], self.channel)
        status = changes.pop("status", None)
        changed = [name for name, value in changes.items() if getattr(self, name) != value]
        for name in changed:
            setattr(self, name, changes[name])
        if status is not None and Status(status) is not self.status:
            self._set_status(Status(status), caller.actor, now)
            changed.append("status")
        if not changed:
            raise InvalidSubscription("body", "no_change", "the update changes nothing")
        if "endpoint" in changed and self.status is Status.ERROR:
            self._reactivate()  # a new address deserves a fresh try
        self._touch(now)
        self._schedule_heartbeat(now)
        if changed != ["status"]:
            self._changed(
                caller.actor, now, "updated", changed=[c for c in changed if c != "status"]
            )
        return changed

    def _set_status(self, status: Status, actor: Actor, now: datetime) -> None:
        if status is Status.ACTIVE:
            self._reactivate()
            self._changed(actor, now, "activated")
        elif status is Status.OFF:
            self.status = Status.OFF
            self._changed(actor, now, "off")
        else:
            raise InvalidSubscription(
                "status", "not_settable", "a subscription can be set 'active' or 'off'"
            )

    def _reactivate(self) -> None:
        """On again: a FHIR subscription repeats its handshake first."""
        self.failures, self.failing_since, self.next_attempt_at = 0, None, None
        self.reason = None
        if self.channel is Channel.FHIR:
            self.status, self.handshake_due = Status.REQUESTED, True
        else:
            self.status = Status.ACTIVE

    def delete(self, caller: Caller, now: datetime) -> None:
        """Switched off for good and hidden; its rows stay for the record."""
        self.check_access(caller)
        self.status, self.deleted_at = Status.OFF, now
        self._touch(now)
        self._changed(caller.actor, now, "deleted")

    def rotate_secret(self, caller: Caller, now: datetime, overlap: timedelta) -> str:
        """A new signing secret. For ``overlap`` both the new and the old one sign every
        delivery, so the receiver can switch at its own pace."""
        self.check_access(caller)
        self.previous_secret, self.previous_secret_until = self.secret, now + overlap
        self.secret = new_secret()
        self._touch(now)
        self._changed(caller.actor, now, "secret-rotated")
        return self.secret

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign a delivery now: the current one, and the previous one while
        the rotation's overlap lasts."""
        found = [self.secret]
        if self.previous_secret and self.previous_secret_until and now < self.previous_secret_until:
            found.append(self.previous_secret)
        return found

    def resend_from(self, caller: Caller, number: int, now: datetime) -> None:
        """Deliver again from event ``number`` on (same numbers, same ids). Switches a
        subscription in error back on."""
        self.check_access(caller)
        if not 1 <= number <= self.events_since_start:
            raise InvalidSubscription(
                "from_event_number",
                "out_of_range",
                f"event numbers of this subscription run from 1 to {self.events_since_start}",
            )
        self.delivered_through = min(self.delivered_through, number - 1)
        if self.status is Status.ERROR:
            self._reactivate()
        self.failures, self.failing_since, self.next_attempt_at = 0, None, None
        self._touch(now)
        self._changed(caller.actor, now, "resent", resend_from=number)

    # ---- what it receives ------------------------------------------------------------------

    def receives(self, kind: Kind, state: dict[str, Any]) -> bool:
        """Whether an event of this kind, leaving the referral in ``state``, is numbered for
        this subscription (entitlement is the caller's to check)."""
        return (
            self.status is not Status.OFF
            and kind in TOPIC_KINDS[self.topic]
            and self.filters.passes(state)
        )

    @property
    def backlog(self) -> int:
        return self.events_since_start - self.delivered_through

    @property
    def parsed_endpoint(self) -> Endpoint:
        return parse_endpoint(self.endpoint, EndpointPolicy(allow_loopback=True))

    # ---- delivery --------------------------------------------------------------------------

    def delivered(self, through: int, now: datetime) -> None:
        """The endpoint acknowledged every event up to ``through`` (or a handshake or
        heartbeat when ``through`` is the current mark)."""
        self.delivered_through = max(self.delivered_through, through)
        self.failures, self.failing_since, self.next_attempt_at = 0, None, None
        self.last_success_at = self.last_attempt_at = now
        self._schedule_heartbeat(now)

    def handshake_answered(self, now: datetime) -> None:
        self.handshake_due = False
        self.delivered(self.delivered_through, now)
        if self.status is Status.REQUESTED:
            self.status = Status.ACTIVE
            self._touch(now)
            self._changed(PLATFORM, now, "activated")

    def heartbeat_sent(self, now: datetime, error: str | None) -> None:
        """Heartbeats are not retried: the next one is due a period later either way."""
        self.last_attempt_at = now
        if error is None:
            self.last_success_at = now
        else:
            self.last_error = error
        self._schedule_heartbeat(now)

    def failed(self, now: datetime, error: str, retry: RetryPolicy, delay: float) -> bool:
        """An attempt failed (``error``: a status code or an error kind, never the answer's
        body). Tries again after ``delay`` seconds, unless the endpoint has been failing for
        longer than the retry period: then the subscription turns ``error`` (True)."""
        self.failures += 1
        self.failing_since = self.failing_since or now
        self.last_error, self.last_attempt_at = error[:500], now
        if now - self.failing_since >= retry.retry_for:
            self.status, self.next_attempt_at = Status.ERROR, None
            self.reason = f"no successful delivery since {self.failing_since.isoformat()}"
            self._touch(now)
            self._changed(PLATFORM, now, "errored", reason=self.last_error)
            return True
        self.next_attempt_at = now + timedelta(seconds=delay)
        return False

    def ended(self, now: datetime) -> bool:
        """Switch off a subscription whose ``end`` has passed (True if it did now)."""
        if self.end_at is not None and now >= self.end_at and self.status is not Status.OFF:
            self.status, self.reason = Status.OFF, "its end time passed"
            self._touch(now)
            self._changed(PLATFORM, now, "off", reason=self.reason)
            return True
        return False

    def _schedule_heartbeat(self, now: datetime) -> None:
        self.heartbeat_due_at = (
            now + timedelta(seconds=self.heartbeat_seconds)
            if self.heartbeat_seconds and self.channel is Channel.FHIR
            else None
        )

    def _touch(self, now: datetime) -> None:
        self.updated_at = now
        self.version += 1

    def _changed(self, actor: Actor, now: datetime, change: str, **fields: Any) -> None:
        self.changes.append(
            SubscriptionChanged(
                subscription_id=self.id,
                organisation=self.organisation,
                actor=actor,
                occurred_at=now,
                change=change,
                status=self.status,
                endpoint_origin=self.parsed_endpoint.origin,
                **fields,
            )
        )


def _headers(values: list[str]) -> tuple[str, ...]:
    if len(values) > MAX_HEADERS:
        raise InvalidSubscription("headers", "too_many", f"at most {MAX_HEADERS} headers")
    for value in values:
        match = _HEADER.match(value)
        if match is None:
            raise InvalidSubscription(
                "headers", "header", "each header is 'Name: value' in printable ASCII"
            )
        if _RESERVED_HEADERS.match(match.group(1)):
            raise InvalidSubscription(
                "headers", "reserved", f"{match.group(1)} is set by the platform"
            )
    return tuple(values)


def _heartbeat(seconds: int | None) -> int | None:
    if seconds is not None and not MIN_HEARTBEAT_SECONDS <= seconds <= 86_400:
        raise InvalidSubscription(
            "heartbeat_seconds",
            "range",
            f"a heartbeat period is {MIN_HEARTBEAT_SECONDS} to 86400 seconds",
        )
    return seconds


def _timeout(seconds: int) -> int:
    if not 1 <= seconds <= MAX_TIMEOUT_SECONDS:
        raise InvalidSubscription(
            "timeout_seconds", "range", f"a timeout is 1 to {MAX_TIMEOUT_SECONDS} seconds"
        )
    return seconds


def _max_count(count: int, channel: Channel) -> int:
    if not 1 <= count <= MAX_COUNT:
        raise InvalidSubscription("max_count", "range", f"1 to {MAX_COUNT} events")
    if channel is Channel.WEBHOOK and count != 1:
        raise InvalidSubscription("max_count", "webhook", "a webhook carries one event")
    return count
