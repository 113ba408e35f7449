"""Unit of work: one database transaction holding the referral changes, their events and,
for a POST with an Idempotency-Key, the response to replay.

On commit every event the touched aggregates recorded is written to the outbox and to the
transition history in the same transaction — the change and its event land together or not
at all, and the API never talks to Kafka."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from rx_contracts import wrap
from rx_contracts.topics import REFERRAL_EVENTS
from rx_messaging import fastsql
from rx_messaging.outbox import insert_outbox_rows, outbox_rows
from sqlalchemy import Table
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from ..adapters.ledger import Ledger
from ..adapters.repository import ReferralRepository
from ..adapters.tables import IdempotencyRow
from ..domain.model import Referral

SOURCE = "/services/referrals"
IDEMPOTENCY: Table = IdempotencyRow.__table__  # type: ignore[attr-defined]


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
    check_first: bool = True
    """Look the key up before doing anything (transitions: a retry must not hit If-Match).
    Creates skip it: claiming the key on insert is enough, and cheaper."""
    """Turns what the handler made (a referral, an attachment) into the response."""
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
        """A unit of work inside a transaction someone else commits — a consumer's, whose
        inbox row must land in the same transaction as the effects."""
        uow = cls(lambda: session, correlation_id)
        uow._owns_session = False
        return uow

    def __enter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        self.referrals = ReferralRepository(self.session)
        self.ledger = Ledger(self.session)
        if self.idempotency is not None and self.idempotency.check_first:
            # Checked in the same transaction as the change, so a key is used at most once.
            stored = self.stored_response(self.idempotency.organisation, self.idempotency.key)
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
            # close() discards anything uncommitted without expiring what was read, so
            # results stay usable after the block.
            self.session.close()

    def stored_response(self, organisation: str, key: str) -> IdempotencyRow | None:
        return self.session.get(IdempotencyRow, (organisation, key))

    def commit(self, result: object = None) -> None:
        """Store every change with its events; for an idempotent POST also the response,
        rendered from ``result`` (what the handler made).

        Everything is built first (events, outbox rows, history, the response) and only then
        written, so a new referral's transaction — and SQLite's write lock, which every POST
        of this process queues for — lasts just the inserts and the commit."""
        staged = [self._stage(r) for r in self.referrals.seen.values() if r.pending]
        claim = None
        if self.idempotency is not None and result is not None:
            claim = self._claim(self.idempotency, result)
        for referral, history, outbox in staged:
            self.ledger.record(referral)  # before save: it keeps the version being replaced
            self.referrals.save(referral)
            insert_outbox_rows(self.session, outbox)
            self.referrals.add_transitions(history)
            referral.pending.clear()
        if claim is not None:
            # Inserting the key is what claims it: a concurrent or earlier use makes this fail
            # with IntegrityError, and the caller answers with the stored response instead.
            conn = self.session.connection()
            try:
                fastsql.execute(conn, fastsql.insert_into(IDEMPOTENCY, tuple(claim)), claim)
            except conn.dialect.loaded_dbapi.IntegrityError as exc:
                # Straight to the driver (rx_messaging.fastsql), which does not wrap its errors.
                raise IntegrityError("claiming the Idempotency-Key", None, exc) from exc
        if self._owns_session:
            self.session.commit()
        else:
            self.session.flush()

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
                    "at": step.at,
                }
            )
        return referral, history, outbox

    @staticmethod
    def _claim(request: IdempotentRequest, result: object) -> dict[str, Any]:
        """Render the response to remember for this key, and the row that claims the key."""
        request.response = request.render(result)
        return {
            "organisation": request.organisation,
            "key": request.key,
            "fingerprint": request.fingerprint,
            "status_code": request.response.status_code,
            "body": request.response.body,
            "headers": request.response.headers,
            "created_at": datetime.now(UTC),
        }


def session_factory(engine: Engine) -> Callable[[], Session]:
    return lambda: Session(engine, expire_on_commit=False)
