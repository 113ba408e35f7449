"""Unit of work: one database transaction holding the referral changes and their events.

On commit every event the touched aggregates recorded is written to the outbox and to the
transition history in the same transaction — the change and its event land together or not
at all, and the API never talks to Kafka."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from rx_contracts import wrap
from rx_contracts.topics import REFERRAL_EVENTS
from rx_messaging.outbox import add_to_outbox
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ..adapters.repository import ReferralRepository
from ..adapters.tables import TransitionRow

SOURCE = "/services/referrals"


class UnitOfWork:
    def __init__(
        self, session_factory: Callable[[], Session], correlation_id: str | None = None
    ) -> None:
        self._session_factory = session_factory
        self.correlation_id = correlation_id
        self._owns_session = True

    @classmethod
    def joining(cls, session: Session, correlation_id: str | None = None) -> UnitOfWork:
        """A unit of work inside a transaction someone else commits — a consumer's, whose
        inbox row must land in the same transaction as the effects."""
        uow = cls(lambda: session, correlation_id)
        uow._owns_session = False
        return uow

    def __enter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        self.referrals = ReferralRepository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_session:
            # close() discards anything uncommitted without expiring what was read, so
            # results stay usable after the block.
            self.session.close()

    def commit(self) -> None:
        for referral in self.referrals.seen.values():
            self.referrals.save(referral)
            for step in referral.pending:
                event_id = step.cause_event_id or ""
                if step.event is not None:
                    envelope = wrap(step.event, source=SOURCE, correlation_id=self.correlation_id)
                    add_to_outbox(self.session, envelope, [REFERRAL_EVENTS])
                    event_id = envelope.id
                self.referrals.add_transition(
                    TransitionRow(
                        referral_id=referral.id,
                        sequence=step.sequence,
                        action=step.action,
                        to_status=step.to_status.value,
                        actor_org=step.actor.organisation,
                        actor_practitioner=step.actor.practitioner,
                        event_id=event_id,
                        at=step.at,
                    )
                )
            referral.pending.clear()
        if self._owns_session:
            self.session.commit()
        else:
            self.session.flush()


def session_factory(engine: Engine) -> Callable[[], Session]:
    return lambda: Session(engine, expire_on_commit=False)
