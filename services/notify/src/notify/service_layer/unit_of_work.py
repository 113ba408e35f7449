"""Unit of work: one database transaction holding subscription changes, the events they
recorded (written to the outbox on commit, for ``notify.subscriptions.v1``) and, for a POST with
an Idempotency-Key, the response to replay. A commit that changed a subscription wakes the
delivery workers (its handshake, a resend or a reactivation may be due now)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from rx_contracts import wrap
from rx_contracts.topics import NOTIFY_SUBSCRIPTIONS
from rx_messaging.outbox import add_to_outbox
from rx_messaging.wake import announce
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ..adapters.repository import ReferralRepository, SubscriptionRepository
from ..adapters.tables import IdempotencyRow

SOURCE = "/services/notify"
DELIVERY = "rx_delivery"
"""The delivery workers' wake-up channel (``rx_messaging.wake``)."""


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class IdempotentRequest:
    """A POST that carried an Idempotency-Key: its first response is stored with the change."""

    organisation: str
    key: str
    fingerprint: str
    render: Callable[[Any], StoredResponse]
    """Turns what the handler made into the response."""
    response: StoredResponse | None = None


class AlreadyDone(Exception):
    """This Idempotency-Key was used before: ``stored`` is the first response."""

    def __init__(self, stored: IdempotencyRow) -> None:
        super().__init__(stored.key)
        self.stored = stored


class UnitOfWork:
    def __init__(
        self, session_factory: Callable[[], Session], correlation_id: str | None = None
    ) -> None:
        self._session_factory = session_factory
        self.correlation_id = correlation_id
        self.idempotency: IdempotentRequest | None = None
        self._owns_session = True

    @classmethod
    def joining(cls, session: Session, correlation_id: str | None = None) -> UnitOfWork:
        """A unit of work inside a transaction someone else commits (the consumer's, whose
        inbox rows land in the same transaction as the effects)."""
        uow = cls(lambda: session, correlation_id)
        uow._owns_session = False
        return uow

    def __enter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        self.subscriptions = SubscriptionRepository(self.session)
        self.referrals = ReferralRepository(self.session)
        if self.idempotency is not None:
            stored = self.session.get(
                IdempotencyRow, (self.idempotency.organisation, self.idempotency.key)
            )
            if stored is not None:
                self.session.close()
                raise AlreadyDone(stored)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_session:
            self.session.close()

    def commit(self, result: object = None) -> None:
        """Store every subscription loaded (for update) with the events it recorded, and an idempotent POST's response
        rendered from ``result``."""
        for subscription in self.subscriptions.seen.values():
            self.subscriptions.save(subscription)
            if subscription.changes:
                announce(self.session, DELIVERY)
            for payload in subscription.changes:
                envelope = wrap(payload, source=SOURCE, correlation_id=self.correlation_id)
                add_to_outbox(self.session, envelope, [NOTIFY_SUBSCRIPTIONS])
            subscription.changes.clear()
        if self.idempotency is not None and result is not None:
            request = self.idempotency
            request.response = request.render(result)
            self.session.add(
                IdempotencyRow(
                    organisation=request.organisation,
                    key=request.key,
                    fingerprint=request.fingerprint,
                    status_code=request.response.status_code,
                    body=request.response.body,
                    headers=request.response.headers,
                    created_at=datetime.now(UTC),
                )
            )
        if self._owns_session:
            self.session.commit()
        else:
            self.session.flush()


def session_factory(engine: Engine) -> Callable[[], Session]:
    return lambda: Session(engine, expire_on_commit=False)
