"""Writing events into the outbox, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rx_contracts import Envelope, encode
from sqlalchemy import Table
from sqlmodel import Session

from . import fastsql
from .buffer import write_buffer
from .tables import OutboxMessage, utcnow
from .wake import announce

OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]


def outbox_rows(envelope: Envelope, topics: Iterable[str]) -> list[dict[str, Any]]:
    """The outbox rows staging ``envelope`` for each of ``topics`` (same event id on each).

    Pure Python, so a caller can build them before its transaction starts and hold the
    database's write lock only for the insert."""
    record = encode(envelope)
    headers = [[name, raw.decode()] for name, raw in record.headers]
    now = utcnow()
    return [
        {
            "event_id": envelope.id,
            "topic": topic,
            "key": record.key,
            "value": record.value,
            "headers": headers,
            "created_at": now,
        }
        for topic in topics
    ]


def insert_outbox_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert rows made by :func:`outbox_rows` in the session's transaction."""
    if rows:
        # Straight to the driver (rx_messaging.fastsql), on the session's connection: outbox
        # rows are append-only, so neither the ORM's bulk-insert bookkeeping nor a Core
        # statement's per-call work (each several times the insert itself) buys anything.
        fastsql.execute_many(
            session.connection(), fastsql.insert_into(OUTBOX, tuple(rows[0])), rows
        )
        announce(session)  # the relay wakes when this transaction commits


def add_to_outbox(session: Session, envelope: Envelope, topics: Iterable[str]) -> None:
    """Stage ``envelope`` for publication to each of ``topics`` (same event id on each).

    Nothing reaches Kafka here: the relay publishes the rows after this transaction commits,
    so the change and its event are stored together or not at all."""
    insert_outbox_rows(session, outbox_rows(envelope, topics))


def queue_outbox(session: Session, envelope: Envelope, topics: Iterable[str]) -> None:
    """:func:`add_to_outbox` through the session's write buffer (``rx_messaging.buffer``): the
    rows are written with the transaction's other queued rows, at the latest when it commits,
    and dropped if it (or the savepoint they were queued in) rolls back. For consumers, which
    never read their outbox back in the same transaction."""
    write_buffer(session).extend(OUTBOX, outbox_rows(envelope, topics))
    announce(session)
