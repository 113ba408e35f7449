"""Delivery state, one short transaction at a time: which subscriptions a worker takes on
(leases), what to send next for one, and what became of it.

A worker leases a subscription while it delivers it, so each subscription has one request in
flight and its events go in number order; several workers share the subscriptions. Everything
is in the database: a worker killed mid-flight loses nothing, its leases lapse (or it takes them
back when it restarts under the same name) and the unacknowledged event is sent again, with the
same number and message id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from ..adapters.notifications import NotificationType, NumberedEvent
from ..adapters.repository import due_condition, next_due_at
from ..adapters.tables import SUBSCRIPTION
from ..domain.backoff import retry_delay
from ..domain.subscription import Channel, RetryPolicy, Status, Subscription
from .unit_of_work import UnitOfWork

WINDOW = 100
"""Events one job takes on: sent one request after another, acknowledged in one transaction."""


@dataclass(frozen=True)
class Job:
    """What to send next to one subscription: a handshake, a heartbeat, or a window of its
    next events, sent in number order (one event per webhook request, up to ``max_count`` per
    FHIR notification)."""

    subscription: Subscription
    kind: NotificationType
    events: list[NumberedEvent]

    def requests(self) -> list[list[NumberedEvent]]:
        """The events of each request, in order."""
        if self.kind is not NotificationType.EVENT:
            return [[]]
        size = 1 if self.subscription.channel is Channel.WEBHOOK else self.subscription.max_count
        return [self.events[i : i + size] for i in range(0, len(self.events), size)]


class Deliveries:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        owner: str,
        lease: timedelta,
        retry: RetryPolicy,
    ) -> None:
        self.uow = uow
        self.owner = owner
        self.lease = lease
        self.retry = retry

    def release_mine(self) -> int:
        """A restarted worker takes back the leases it held before (same name)."""
        with self.uow() as uow:
            result = uow.session.connection().execute(
                update(SUBSCRIPTION)
                .where(SUBSCRIPTION.c.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
            )
            uow.session.commit()
            return int(result.rowcount or 0)

    def claim(self, now: datetime, limit: int, busy: set[str]) -> list[Job]:
        """Lease up to ``limit`` subscriptions with work due now, other than ``busy``, and
        return the first job of each, in one transaction (a subscription found to have
        nothing to do after all is released at once)."""
        if limit <= 0:
            return []
        with self.uow() as uow:
            connection = uow.session.connection()
            ids = list(
                connection.execute(
                    select(SUBSCRIPTION.c.id)
                    .where(due_condition(now), SUBSCRIPTION.c.id.not_in(busy))
                    .order_by(SUBSCRIPTION.c.next_attempt_at.is_not(None), SUBSCRIPTION.c.id)
                    .limit(limit)
                ).scalars()
            )
            jobs = []
            for sid in ids:
                result = connection.execute(
                    update(SUBSCRIPTION)
                    .where(
                        SUBSCRIPTION.c.id == sid,
                        or_(
                            SUBSCRIPTION.c.lease_until.is_(None),
                            SUBSCRIPTION.c.lease_until < now,
                            SUBSCRIPTION.c.lease_owner == self.owner,
                        ),
                    )
                    .values(lease_owner=self.owner, lease_until=now + self.lease)
                )
                if result.rowcount != 1:
                    continue
                subscription = uow.subscriptions.get(sid, for_update=True)
                job = self._job(uow, subscription, now) if subscription is not None else None
                if job is None:
                    self._release(uow, sid)
                else:
                    jobs.append(job)
            uow.commit()
        return jobs

    def acknowledge(self, jobs: list[Job], now: datetime) -> None:
        """Record that these jobs went through and release their subscriptions, in one
        transaction: their subscriptions are looked at again when more work is due."""
        if not jobs:
            return
        with self.uow() as uow:
            for job in jobs:
                subscription = uow.subscriptions.get(job.subscription.id, for_update=True)
                if subscription is not None:
                    self._record_success(subscription, job, now)
            uow.session.execute(
                update(SUBSCRIPTION)
                .where(
                    SUBSCRIPTION.c.id.in_([job.subscription.id for job in jobs]),
                    SUBSCRIPTION.c.lease_owner == self.owner,
                )
                .values(lease_owner=None, lease_until=None)
            )
            uow.commit()

    def _release(self, uow: UnitOfWork, subscription_id: str) -> None:
        uow.session.execute(
            update(SUBSCRIPTION)
            .where(SUBSCRIPTION.c.id == subscription_id, SUBSCRIPTION.c.lease_owner == self.owner)
            .values(lease_owner=None, lease_until=None)
        )

    def next_job(self, subscription_id: str, now: datetime, done: Job | None = None) -> Job | None:
        """What to send next, renewing the lease; None (lease released) when nothing is due.
        ``done``: the job just acknowledged, recorded in the same transaction."""
        with self.uow() as uow:
            subscription = uow.subscriptions.get(subscription_id, for_update=True)
            if subscription is None or not self._holds(uow, subscription_id):
                return None
            if done is not None:
                self._record_success(subscription, done, now)
            job = self._job(uow, subscription, now)
            lease = (now + self.lease) if job is not None else None
            uow.session.execute(
                update(SUBSCRIPTION)
                .where(SUBSCRIPTION.c.id == subscription_id)
                .values(lease_owner=self.owner if job else None, lease_until=lease)
            )
            uow.commit()
        return job

    def _holds(self, uow: UnitOfWork, subscription_id: str) -> bool:
        owner = uow.session.execute(
            select(SUBSCRIPTION.c.lease_owner).where(SUBSCRIPTION.c.id == subscription_id)
        ).scalar()
        return owner == self.owner

    def _job(self, uow: UnitOfWork, subscription: Subscription, now: datetime) -> Job | None:
        if subscription.deleted_at is not None or subscription.ended(now):
            return None
        if subscription.status not in (Status.ACTIVE, Status.REQUESTED):
            return None
        retry_due = subscription.next_attempt_at is None or subscription.next_attempt_at <= now
        if subscription.handshake_due and subscription.channel is Channel.FHIR:
            return Job(subscription, NotificationType.HANDSHAKE, []) if retry_due else None
        if subscription.status is not Status.ACTIVE:
            return None
        if subscription.backlog > 0:
            if not retry_due:
                return None
            first = subscription.delivered_through + 1
            events = uow.subscriptions.notifications(
                subscription.id, first, first + max(WINDOW, subscription.max_count) - 1
            )
            return Job(subscription, NotificationType.EVENT, events) if events else None
        if subscription.heartbeat_due_at is not None and subscription.heartbeat_due_at <= now:
            return Job(subscription, NotificationType.HEARTBEAT, [])
        return None

    def succeeded(self, job: Job, now: datetime) -> None:
        with self.uow() as uow:
            subscription = uow.subscriptions.get(job.subscription.id, for_update=True)
            if subscription is None:
                return
            self._record_success(subscription, job, now)
            uow.commit()

    @staticmethod
    def _record_success(
        subscription: Subscription, job: Job, now: datetime, through: int | None = None
    ) -> None:
        """Record what the endpoint acknowledged: the whole job, or its events ``through``."""
        if job.kind is NotificationType.HANDSHAKE:
            subscription.handshake_answered(now)
        elif job.kind is NotificationType.HEARTBEAT:
            subscription.heartbeat_sent(now, None)
        elif subscription.delivered_through == job.events[0].number - 1:
            # (unless a resend moved the mark back meanwhile: then that wins)
            subscription.delivered(job.events[-1].number if through is None else through, now)

    def failed(self, job: Job, now: datetime, error: str, acknowledged: int | None = None) -> bool:
        """Record a failed attempt (after the job's events up to ``acknowledged`` went
        through); True if the subscription turned ``error``."""
        with self.uow() as uow:
            subscription = uow.subscriptions.get(job.subscription.id, for_update=True)
            if subscription is None:
                return False
            if acknowledged is not None:
                self._record_success(subscription, job, now, acknowledged)
            if job.kind is NotificationType.HEARTBEAT:
                subscription.heartbeat_sent(now, error)
                gave_up = False
            else:
                delay = retry_delay(subscription.failures + 1, self.retry.first, self.retry.cap)
                gave_up = subscription.failed(now, error, self.retry, delay)
            uow.session.execute(
                update(SUBSCRIPTION)
                .where(SUBSCRIPTION.c.id == job.subscription.id)
                .values(lease_owner=None, lease_until=None)
            )
            uow.commit()
        return gave_up

    def release(self, subscription_id: str) -> None:
        with self.uow() as uow:
            uow.session.execute(
                update(SUBSCRIPTION)
                .where(
                    SUBSCRIPTION.c.id == subscription_id, SUBSCRIPTION.c.lease_owner == self.owner
                )
                .values(lease_owner=None, lease_until=None)
            )
            uow.session.commit()

    def next_due(self) -> datetime | None:
        with self.uow() as uow:
            return next_due_at(uow.session)
