"""Unit of work: one database transaction holding the referral changes, their events and,
for a POST with an Idempotency-Key, the response to replay.

On commit every event the touched aggregates recorded is written to the outbox and to the
transition history in the same transaction — the change and its event land together or not
at all, and the API never talks to Kafka.

Units of work nest: a ``with uow:`` inside an open one joins it, and there ``commit()`` leaves
the writing to the outer block's commit. An idempotent POST uses that to store its response in
the transaction of the change, while the unit of work knows nothing of HTTP and the handler
nothing of idempotency (``entrypoints/api/idempotency.py``)::

    with uow:                                     # the request's transaction
        referral = handlers.transition(..., uow)  # its own `with uow:` joins; nothing written
        response = render(referral)               # the route renders the domain result
        uow.commit(remember=IdempotentResponse(org, key, fingerprint, response))

The outer commit writes the change, its events and the key with its response (the insert that
claims the key), and commits once. Called on its own (a read, a consumer, a test), a handler's
commit is the outermost and writes at once. For a new referral nothing touches the database
before that commit, so its transaction (and SQLite's write lock, which every POST of the
process queues for) lasts just the inserts and the commit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from rx_contracts import Envelope, wrap
from rx_contracts.topics import REFERRAL_EVENTS
from rx_messaging.outbox import insert_outbox_rows, outbox_rows
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ..adapters.idempotency import IdempotencyKeys, IdempotentResponse
from ..adapters.ledger import Ledger
from ..adapters.repository import ReferralRepository
from ..adapters.transaction import Transaction
from ..domain.model import Referral

SOURCE = "/services/referrals"


class UnitOfWork:
    def __init__(
        self,
        session_factory: Callable[[], Session | Transaction],
        correlation_id: str | None = None,
    ) -> None:
        self._session_factory = session_factory
        self.correlation_id = correlation_id
        self._owns_session = True
        self._depth = 0
        self._now: datetime | None = None

    @classmethod
    def joining(cls, session: Session, correlation_id: str | None = None) -> UnitOfWork:
        """A unit of work inside a transaction someone else commits — a consumer's, whose
        inbox row must land in the same transaction as the effects."""
        uow = cls(lambda: session, correlation_id)
        uow._owns_session = False
        return uow

    def __enter__(self) -> UnitOfWork:
        if self._depth == 0:
            self.session = self._session_factory()
            self.referrals = ReferralRepository(self.session)
            self.idempotency_keys = IdempotencyKeys(self.session)
            self.ledger = Ledger(self.session)
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0 and self._owns_session:
            # close() discards anything uncommitted without expiring what was read, so
            # results stay usable after the block.
            self.session.close()

    def now(self) -> datetime:
        """This unit of work's time, fixed at its first use until it commits: the steps a
        request makes and the row it writes carry one time, so an answer built from the steps
        (FHIR's ``meta.lastUpdated``) is what a later read gives. A step another service timed
        (routing's decision) keeps its own time; the row is still stamped now."""
        if self._now is None:
            self._now = datetime.now(UTC)
        return self._now

    def commit(self, remember: IdempotentResponse | None = None) -> None:
        """Store every change with its events and, with ``remember``, claim its
        Idempotency-Key with the response to replay (``IntegrityError`` if the key was
        already used). Inside an enclosing ``with uow:`` this does nothing: the outermost
        commit writes everything.

        Everything is built first (events, outbox rows, history) and only then written."""
        if self._depth > 1:
            assert remember is None, "the outermost commit remembers the response"
            return
        staged = [self._stage(r) for r in self.referrals.seen.values() if r.pending]
        at, self._now = self.now(), None  # the next change of a reused unit of work: a new time
        for referral, history, outbox in staged:
            # Before save: it keeps the version being replaced.
            self.ledger.record(referral, self.referrals.loaded)
            self.referrals.save(referral, at)
            self.insert_outbox_rows(outbox)
            self.referrals.add_transitions(history)
            referral.pending.clear()
        if remember is not None:
            self.idempotency_keys.claim(remember)
        if self._owns_session:
            self.session.commit()
        else:
            self.session.flush()

    def add_to_outbox(self, envelope: Envelope, topics: Iterable[str]) -> None:
        """Stage ``envelope`` for each of ``topics`` in this transaction
        (``rx_messaging.outbox.add_to_outbox``)."""
        self.insert_outbox_rows(outbox_rows(envelope, topics))

    def insert_outbox_rows(self, rows: list[dict[str, Any]]) -> None:
        if isinstance(self.session, Transaction):
            self.session.insert_outbox_rows(rows)
        else:
            insert_outbox_rows(self.session, rows)

    def _stage(
        self, referral: Referral
    ) -> tuple[Referral, list[dict[str, object]], list[dict[str, Any]]]:
        """The history and outbox rows of a referral's pending steps (no database work)."""
        history: list[dict[str, object]] = []
        outbox: list[dict[str, Any]] = []
        for step in referral.pending:
            event_id = step.cause_event_id or ""
            if step.event is not None:
                envelope = wrap(step.event, source=SOURCE, correlation_id=self.correlation_id)
                outbox += outbox_rows(envelope, [REFERRAL_EVENTS])
                event_id = envelope.id
            history.append(
                {
                    "referral_id": referral.id,
                    "sequence": step.sequence,
                    "action": step.action,
                    "to_status": step.to_status.value,
                    "actor_org": step.actor.organisation,
                    "actor_practitioner": step.actor.practitioner,
                    "event_id": event_id,
                    "reason_code": step.reason_code,
                    "note": step.note,
                    "attachment_id": step.attachment_id,
                    "at": step.at,
                }
            )
        return referral, history, outbox


def session_factory(engine: Engine) -> Callable[[], Transaction]:
    """Each unit of work's transaction: on a bare connection (``adapters.transaction``)."""
    return lambda: Transaction(engine)
