"""Unit of work: one transaction of the routing database, and the repositories that read and
write it.

On commit, everything the touched cases and clocks recorded is stored, in the order they
recorded it, with their events staged in the outbox in the same transaction: a decision, its
clocks and its events land together or not at all. The consumer's unit of work joins the
transaction of its inbox, which the consumer commits for the whole poll batch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from rx_contracts import Envelope, Payload, wrap
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ..adapters.cache import DirectoryCache
from ..adapters.clocks import ClockRepository
from ..adapters.directory import DirectoryRepository
from ..adapters.outbox import Outbox
from ..adapters.repository import CaseRepository
from ..domain.changes import (
    AcceptanceClockResumed,
    Change,
    ClocksStopped,
    ClockStarted,
    Decided,
    DecisionAccepted,
    DecisionReleased,
    Forwarded,
    LoadChanged,
    Published,
    ResponseClockResumed,
)
from ..domain.model import Case
from ..domain.sla import SlaClock, response_clock_id

SOURCE = "/services/routing"


class UnitOfWork:
    def __init__(
        self,
        session_factory: Callable[[], Session],
        directory: DirectoryCache | None = None,
        correlation_id: str | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._directory = directory or DirectoryCache()
        self.correlation_id = correlation_id
        """Carried by the events this unit of work publishes (its cause's)."""
        self._owns_session = True

    @classmethod
    def joining(
        cls, session: Session, directory: DirectoryCache, correlation_id: str | None = None
    ) -> UnitOfWork:
        """A unit of work inside a transaction someone else commits — a consumer's, whose
        inbox row must land in the same transaction as the effects."""
        uow = cls(lambda: session, directory, correlation_id)
        uow._owns_session = False
        return uow

    def __enter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        self.cases = CaseRepository(self.session)
        self.clocks = ClockRepository(self.session)
        self.directory = DirectoryRepository(self.session, self._directory)
        self.outbox = Outbox(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_session:
            self.session.close()  # discards anything uncommitted

    def commit(self) -> None:
        """Store what the cases and clocks recorded, move the directory's version if it was
        changed, and commit (a joined unit of work leaves the commit to its owner)."""
        for case in self.cases.seen:
            for change in case.take_changes():
                self._store(case, change)
            self.cases.save(case)
        for clock in self.clocks.fired:
            for event in clock.take_events():
                envelope = wrap(
                    event.payload,
                    source=SOURCE,
                    correlation_id=clock.correlation_id,
                    event_id=event.event_id,
                    time=event.at,
                )
                self.outbox.add(envelope, event.topics)
            self.clocks.save(clock)
        if self.directory.changed:
            self.directory.bump()
        if self._owns_session:
            self.session.commit()

    def _store(self, case: Case, change: Change) -> None:
        rid = case.referral_id
        if isinstance(change, ClockStarted):
            self.clocks.add(change.clock)
        elif isinstance(change, ClocksStopped):
            self.clocks.stop(rid, change.kinds, change.reason, change.at)
        elif isinstance(change, LoadChanged):
            self.cases.change_load(change.organisation, change.day, change.change, change.capacity)
        elif isinstance(change, Decided):
            envelope = self.publish(change.event, change.topics, change.decision.decided_at)
            self.cases.add_decision(change.decision, envelope.id)
        elif isinstance(change, Published):
            self.publish(change.event, change.topics, change.at)
        elif isinstance(change, Forwarded):
            self.outbox.add(change.envelope, change.topics)
        elif isinstance(change, DecisionAccepted):
            self.cases.accept_decision(rid, change.decision_id, change.at)
        elif isinstance(change, DecisionReleased):
            self.cases.release_decision(rid, change.decision_id, change.how, change.at)
        elif isinstance(change, ResponseClockResumed):
            self._resume(self.clocks.get(response_clock_id(rid)))
        elif isinstance(change, AcceptanceClockResumed):
            clock = self.clocks.get(change.clock_id)
            if clock is not None and clock.resume_after_pause(change.at):
                self.clocks.save(clock)

    def publish(self, event: Payload, topics: tuple[str, ...], at: datetime) -> Envelope:
        """Stage ``event`` in the outbox for ``topics``, in this unit of work's transaction."""
        envelope = wrap(event, source=SOURCE, correlation_id=self.correlation_id, time=at)
        self.outbox.add(envelope, topics)
        return envelope

    def _resume(self, clock: SlaClock | None) -> None:
        if clock is not None and clock.resume():
            self.clocks.save(clock)


def session_factory(engine: Engine) -> Callable[[], Session]:
    return lambda: Session(engine, expire_on_commit=False)
