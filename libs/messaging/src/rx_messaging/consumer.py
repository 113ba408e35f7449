"""Idempotent consumers: each event's effects and its inbox row commit in one transaction,
then the offset is committed. Redeliveries are no-ops; poison goes to ``<topic>.dlq``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from rx_contracts import Envelope, EnvelopeError, decode
from rx_contracts.topics import dead_letter_topic
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .ports import Publisher, RecordSource
from .records import Record
from .tables import InboxMessage

log = logging.getLogger(__name__)

Handler = Callable[[Session, Envelope, Record], None]
"""Applies one event's effects inside the given session; must not commit it."""


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
        """Poll one batch and process it. A transient failure rewinds that record's partition
        (and skips the rest of its batch there) so it is tried again on the next poll."""
        result = BatchResult()
        positions: dict[tuple[str, int], int] = {}
        blocked: set[tuple[str, int]] = set()
        for record in self.source.poll(timeout):
            tp = (record.topic, record.partition)
            if tp in blocked:
                continue
            try:
                outcome = self._process(record)
            except Exception:
                log.exception("%s: retrying %s[%d]@%d", self.name, *tp, record.offset)
                self.source.seek(record.topic, record.partition, record.offset)
                blocked.add(tp)
                result.retry = True
                continue
            setattr(result, outcome, getattr(result, outcome) + 1)
            positions[tp] = record.offset + 1
        self.source.commit(positions)
        return result

    def _process(self, record: Record) -> str:
        try:
            envelope = decode(record.key, record.value, record.headers)
        except EnvelopeError as exc:
            self._dead_letter(record, exc)
            return "dead_lettered"
        with Session(self.engine) as session:
            if session.get(InboxMessage, (self.name, envelope.id)) is not None:
                return "duplicates"
            try:
                self.handler(session, envelope, record)
            except (PermanentError, EnvelopeError) as exc:
                session.rollback()
                self._dead_letter(record, exc)
                return "dead_lettered"
            session.add(
                InboxMessage(
                    consumer=self.name,
                    event_id=envelope.id,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
            )
            session.commit()
        return "applied"

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
