"""Idempotent consumers: a poll batch's effects and inbox rows commit in one transaction, then
the offsets are committed. Redeliveries are no-ops; poison goes to ``<topic>.dlq``.

One transaction per batch instead of per event: a consumer catching up on a backlog pays for one
commit (one fsync, one SQLite write-lock hand-over) per few hundred events. Each event is
applied inside its own SAVEPOINT, so an event that fails rolls back only its own effects."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from rx_contracts import Envelope, EnvelopeError, decode
from rx_contracts.topics import dead_letter_topic
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from .ports import Publisher, RecordSource
from .records import Record
from .tables import InboxMessage, utcnow

log = logging.getLogger(__name__)

Handler = Callable[[Session, Envelope, Record], None]
"""Applies one event's effects inside the given session; must not commit it. Several events
of a batch are applied one after another in the same session."""


class PermanentError(Exception):
    """This event can never be applied (bad data, impossible state): dead-letter it."""


class TransientError(Exception):
    """A retryable failure: the batch stops at this record and is polled again later."""


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retry: bool = False


@dataclass
class _Batch:
    """What one pass over a poll batch decided, before anything is made durable."""

    result: BatchResult = field(default_factory=BatchResult)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    """(topic, partition) → next offset to read, for the records settled in this batch."""
    dead: list[tuple[Record, Exception]] = field(default_factory=list)
    retry_from: dict[tuple[str, int], int] = field(default_factory=dict)
    """(topic, partition) → offset of the record that failed and must be read again."""


class InboxConsumer:
    """Consumes records, applies each new event once, dead-letters poison, commits offsets."""

    def __init__(
        self, name: str, source: RecordSource, engine: Engine, handler: Handler, dlq: Publisher
    ) -> None:
        self.name = name
        self.source = source
        self.engine = engine
        self.handler = handler
        self.dlq = dlq

    def step(self, timeout: float = 0.5) -> bool:
        """One worker-loop step: True if records were handled; TransientError after a
        rewind, so the loop backs off before polling again."""
        result = self.consume_once(timeout)
        if result.retry:
            raise TransientError(f"{self.name}: a record failed and will be retried")
        return bool(result.applied or result.duplicates or result.dead_lettered)

    def consume_once(self, timeout: float = 0.5) -> BatchResult:
        """Poll one batch and process it in one transaction.

        Order of durability: effects + inbox rows commit, then poison goes to the DLQ, then the
        offsets are committed. A crash anywhere in between means redelivery, which the inbox
        turns into no-ops (and a poison record is parked again: at-least-once in the DLQ too).
        A transient failure rewinds that record's partition (the rest of its batch there waits)
        so it is tried again on the next poll. If the batch cannot be made durable (its commit,
        the DLQ or the offset commit fails), every partition is rewound to the batch's first
        record, so nothing is skipped."""
        records = self.source.poll(timeout)
        if not records:
            return BatchResult()
        try:
            batch = self._apply(records)
            for record, error in batch.dead:
                self._dead_letter(record, error)
            self.source.commit(batch.positions)
        except Exception:
            self._rewind(records)
            raise
        for (topic, partition), offset in batch.retry_from.items():
            self.source.seek(topic, partition, offset)
        return batch.result

    def _apply(self, records: list[Record]) -> _Batch:
        batch = _Batch()
        decoded: list[tuple[Record, Envelope | EnvelopeError]] = []
        for record in records:
            try:
                decoded.append((record, decode(record.key, record.value, record.headers)))
            except EnvelopeError as exc:
                decoded.append((record, exc))
        with Session(self.engine) as session:
            seen = self._already_applied(session, decoded)
            for record, envelope in decoded:
                tp = (record.topic, record.partition)
                if tp in batch.retry_from:
                    continue  # an earlier record of this partition must go first
                outcome = self._process(session, record, envelope, seen, batch)
                if outcome == "retry":
                    batch.retry_from[tp] = record.offset
                    batch.result.retry = True
                    continue
                setattr(batch.result, outcome, getattr(batch.result, outcome) + 1)
                batch.positions[tp] = record.offset + 1
            session.commit()
        return batch

    def _already_applied(
        self, session: Session, decoded: list[tuple[Record, Envelope | EnvelopeError]]
    ) -> set[str]:
        ids = [e.id for _, e in decoded if isinstance(e, Envelope)]
        if not ids:
            return set()
        query = select(InboxMessage.event_id).where(
            InboxMessage.consumer == self.name, col(InboxMessage.event_id).in_(ids)
        )
        return set(session.exec(query))

    def _process(
        self,
        session: Session,
        record: Record,
        envelope: Envelope | EnvelopeError,
        seen: set[str],
        batch: _Batch,
    ) -> str:
        if isinstance(envelope, EnvelopeError):
            batch.dead.append((record, envelope))
            return "dead_lettered"
        if envelope.id in seen:
            return "duplicates"  # redelivered, or the same event on a second topic
        try:
            with session.begin_nested():
                self.handler(session, envelope, record)
                session.execute(
                    insert(InboxMessage).values(
                        consumer=self.name,
                        event_id=envelope.id,
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        processed_at=utcnow(),
                    )
                )
        except (PermanentError, EnvelopeError) as exc:
            batch.dead.append((record, exc))
            return "dead_lettered"
        except Exception:
            log.exception(
                "%s: retrying %s[%d]@%d", self.name, record.topic, record.partition, record.offset
            )
            return "retry"
        seen.add(envelope.id)
        return "applied"

    def _rewind(self, records: list[Record]) -> None:
        """Seek every partition of a batch that was not made durable back to its first record."""
        first: dict[tuple[str, int], int] = {}
        for record in records:
            first.setdefault((record.topic, record.partition), record.offset)
        for (topic, partition), offset in first.items():
            self.source.seek(topic, partition, offset)

    def _dead_letter(self, record: Record, error: Exception) -> None:
        log.warning(
            "%s: dead-lettering %s[%d]@%d: %s",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            error,
        )
        headers = [
            *record.headers,
            ("dlq_error", str(error)[:2000].encode()),
            ("dlq_consumer", self.name.encode()),
            ("dlq_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        self.dlq.publish(
            dead_letter_topic(record.topic), [(record.key or b"", record.value or b"", headers)]
        )
