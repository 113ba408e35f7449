"""The write buffer on SQLite and PostgreSQL: queued rows are stored exactly as a Core insert
stores them, at every transaction boundary, and leave with their rollback."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from rx_messaging.buffer import write_buffer
from rx_messaging.outbox import OUTBOX
from rx_messaging.tables import OutboxMessage
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select


def outbox_row(event_id: str, topic: str = "t.v1") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "topic": topic,
        "key": b"r-1\x00\xff",
        "value": b'{"a":1}',
        "headers": [["content-type", "application/json"], ["traceparent", "00-ab-cd-01"]],
        "created_at": datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC),
    }


def stored(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage.event_id).order_by(col(OutboxMessage.id))))


def test_queued_rows_are_stored_as_a_core_insert_stores_them(db: Engine) -> None:
    with Session(db) as session:
        session.connection().execute(OUTBOX.insert(), [outbox_row("core")])
        write_buffer(session).add(OUTBOX, outbox_row("buffered"))
        session.commit()  # no explicit flush: committing writes what was queued

    with Session(db) as session:
        core, buffered = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
    assert buffered.event_id == "buffered"
    for name in ("topic", "key", "value", "headers", "created_at", "sent_at"):
        assert getattr(buffered, name) == getattr(core, name), name


def test_queued_rows_are_not_in_the_database_until_flushed(db: Engine) -> None:
    with Session(db) as session:
        buffer = write_buffer(session)
        buffer.extend(OUTBOX, [outbox_row(f"e-{n}") for n in range(3)])
        count = sa_select(func.count()).select_from(OUTBOX)
        assert (session.execute(count).scalar_one(), len(buffer)) == (0, 3)
        buffer.flush()
        assert (session.execute(count).scalar_one(), len(buffer)) == (3, 0)
        session.commit()
    assert stored(db) == ["e-0", "e-1", "e-2"]


def test_a_rolled_back_savepoint_drops_only_the_rows_queued_inside_it(db: Engine) -> None:
    with Session(db) as session:
        buffer = write_buffer(session)
        buffer.add(OUTBOX, outbox_row("before"))
        with session.begin_nested():
            buffer.add(OUTBOX, outbox_row("kept"))
        savepoint = session.begin_nested()
        buffer.add(OUTBOX, outbox_row("undone"))
        savepoint.rollback()
        buffer.add(OUTBOX, outbox_row("after"))
        session.commit()
    assert stored(db) == ["before", "kept", "after"]


def test_rows_of_a_rolled_back_transaction_are_never_written(db: Engine) -> None:
    with Session(db) as session:
        write_buffer(session).add(OUTBOX, outbox_row("rolled-back"))
        session.rollback()
        write_buffer(session).add(OUTBOX, outbox_row("next"))
        session.commit()
    with Session(db) as session:
        write_buffer(session).add(OUTBOX, outbox_row("closed-without-commit"))
    assert stored(db) == ["next"]


def test_a_flush_hook_runs_once_per_flush_after_the_rows(db: Engine) -> None:
    seen: list[tuple[str, int]] = []

    def hook(name: str) -> Any:
        def run(conn: Connection) -> None:
            seen.append(
                (name, conn.execute(sa_select(func.count()).select_from(OUTBOX)).scalar_one())
            )

        return run

    with Session(db) as session:
        buffer = write_buffer(session)
        for n in range(3):
            buffer.add(OUTBOX, outbox_row(f"e-{n}"))
            buffer.on_flush("head", hook(f"after e-{n}"))
        buffer.flush()
        buffer.flush()  # nothing queued: nothing runs
        session.commit()
    assert seen == [("after e-2", 3)]


def test_rows_with_different_columns_are_all_written(db: Engine) -> None:
    event_id = str(uuid.uuid4())
    sent = {**outbox_row(event_id, "b.v1"), "sent_at": datetime(2026, 1, 1, tzinfo=UTC)}
    with Session(db) as session:
        write_buffer(session).extend(OUTBOX, [outbox_row(event_id, "a.v1"), sent])
        session.commit()
    with Session(db) as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.topic))).all()
    assert [(r.topic, r.sent_at is not None) for r in rows] == [("a.v1", False), ("b.v1", True)]
