"""Writing events into the outbox, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable

from rx_contracts import Envelope, encode
from sqlalchemy import insert
from sqlmodel import Session

from .tables import OutboxMessage, tables_of, utcnow

[OUTBOX] = tables_of(OutboxMessage)


def add_to_outbox(session: Session, envelope: Envelope, topics: Iterable[str]) -> None:
    """Stage ``envelope`` for publication to each of ``topics`` (same event id on each).

    Nothing reaches Kafka here: the relay publishes the rows after this transaction commits,
    so the change and its event are stored together or not at all."""
    record = encode(envelope)
    headers = [[name, raw.decode()] for name, raw in record.headers]
    now = utcnow()
    # A Core insert on the session's connection (same transaction): outbox rows are
    # append-only, so the ORM's bookkeeping, even its bulk path, buys nothing here.
    session.connection().execute(
        insert(OUTBOX),
        [
            {
                "event_id": envelope.id,
                "topic": t,
                "key": record.key,
                "value": record.value,
                "headers": headers,
                "created_at": now,
            }
            for t in topics
        ],
    )
