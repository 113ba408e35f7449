"""fastsql stores exactly what SQLAlchemy stores: its shortcuts for datetimes and bytes, and
converting a value shared by several rows once, change nothing that is read back."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter
from rx_messaging import fastsql
from rx_messaging.database import make_engine
from rx_messaging.outbox import OUTBOX
from rx_messaging.tables import OutboxMessage
from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select


def instants(n: int) -> list[datetime]:
    """Aware datetimes across the years, at whole seconds and not, in several offsets."""
    rng = random.Random(7)
    zones = [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30))]
    out = []
    for _ in range(n):
        at = datetime(1, 1, 2, tzinfo=UTC) + timedelta(seconds=rng.randrange(315_000_000_000))
        if rng.random() < 0.7:
            at = at.replace(microsecond=rng.randrange(1_000_000))
        out.append(at.astimezone(rng.choice(zones)))
    return out


SQLITE = make_engine("sqlite://").dialect
"""SQLite's dialect with its driver loaded, as in a service (some conversions need it)."""


def sqlalchemy_processor(column: str) -> Any:
    return OUTBOX.c[column].type.dialect_impl(SQLITE).bind_processor(SQLITE)


def test_datetimes_take_the_shortcut_to_exactly_sqlalchemys_sqlite_text() -> None:
    statement = fastsql.insert_into(OUTBOX, ("created_at", "key"))
    query = fastsql.compiled(statement, SQLITE)
    by_sqlalchemy, index = sqlalchemy_processor("created_at"), query.names.index("created_at")
    for at in instants(5000):
        assert query.params({"created_at": at, "key": b"k"})[index] == by_sqlalchemy(at), at


def test_datetimes_parsed_by_pydantic_take_the_shortcut_to_the_same_text() -> None:
    """Events' instants come from pydantic, in its own tzinfo class: at offset zero and not."""
    adapter = TypeAdapter(datetime)
    statement = fastsql.insert_into(OUTBOX, ("created_at", "key"))
    query = fastsql.compiled(statement, SQLITE)
    by_sqlalchemy, index = sqlalchemy_processor("created_at"), query.names.index("created_at")
    for at in instants(500):
        for text in (at.isoformat(), at.astimezone(UTC).isoformat().replace("+00:00", "Z")):
            parsed = adapter.validate_python(text)
            assert query.params({"created_at": parsed, "key": b"k"})[index] == by_sqlalchemy(
                parsed
            ), text


def test_bytes_go_to_sqlite_as_the_same_blob_sqlalchemy_would_store() -> None:
    query = fastsql.compiled(fastsql.insert_into(OUTBOX, ("key",)), SQLITE)
    value = b"r-1\x00\xff"
    assert bytes(query.params({"key": value})[0]) == bytes(sqlalchemy_processor("key")(value))


def test_a_naive_datetime_is_refused_as_sqlalchemy_refuses_it() -> None:
    query = fastsql.compiled(fastsql.insert_into(OUTBOX, ("created_at",)), SQLITE)
    with pytest.raises(ValueError, match="timezone"):
        query.params({"created_at": datetime(2026, 11, 22, 9, 30)})


def outbox_rows(n: int) -> list[dict[str, Any]]:
    """Rows sharing objects as a batch's rows do (one instant and one header list in both
    topics' rows of an event), and rows with equal but distinct ones."""
    rows = []
    for i, at in enumerate(instants(n)):
        headers = [["ce_id", f"e-{i}"], ["content-type", "application/json"]]
        for topic in ("a.v1", "b.v1"):
            rows.append(
                {
                    "event_id": f"e-{i}",
                    "topic": topic,
                    "key": f"r-{i}".encode() + b"\x00\xff",
                    "value": b'{"n":%d}' % i,
                    "headers": headers if i % 2 else [list(h) for h in headers],
                    "created_at": at,
                    "sent_at": None if i % 3 else at + timedelta(microseconds=i),
                }
            )
    return rows


def test_rows_written_in_one_executemany_read_back_as_core_inserts_do(db: Engine) -> None:
    rows = outbox_rows(300)
    with Session(db) as session:
        conn = session.connection()
        fastsql.execute_many(conn, fastsql.insert_into(OUTBOX, tuple(rows[0])), rows)
        conn.execute(
            OUTBOX.insert(), [{**row, "event_id": "core-" + row["event_id"]} for row in rows]
        )
        session.commit()

    with Session(db) as session:
        stored = list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))
    fast, core = stored[: len(rows)], stored[len(rows) :]
    for row, by_fast, by_core in zip(rows, fast, core, strict=True):
        for name in ("topic", "key", "value", "headers", "created_at", "sent_at"):
            assert getattr(by_fast, name) == getattr(by_core, name), name
        assert by_fast.created_at == row["created_at"]
        assert by_fast.created_at.utcoffset() == timedelta(0)
        assert by_fast.headers == row["headers"]


def test_rows_fetched_on_the_drivers_cursor_read_as_sqlalchemys_results_do(db: Engine) -> None:
    rows = outbox_rows(50)
    with Session(db) as session:
        session.connection().execute(OUTBOX.insert(), rows)
        session.commit()
    names = ("event_id", "topic", "key", "value", "headers", "created_at", "sent_at")
    query = sa_select(*(OUTBOX.c[name] for name in names)).where(
        OUTBOX.c.topic == bindparam("topic")
    )
    with Session(db) as session:
        conn = session.connection()
        fast = fastsql.fetch_rows(conn, query, {"topic": "a.v1"})
        core = [tuple(row) for row in conn.execute(query, {"topic": "a.v1"})]
        nothing = fastsql.fetch_rows(conn, query, {"topic": "none.v1"})
    assert len(fast) == 50
    assert fast == core
    for by_fast, by_core in zip(fast, core, strict=True):
        for at, expected in zip(by_fast[5:], by_core[5:], strict=True):  # the datetimes
            assert (at is None) is (expected is None)
            assert at is None or at.tzinfo is expected.tzinfo is UTC
    assert nothing == []
    assert isinstance(fast[0][names.index("headers")], list)
    assert isinstance(fast[0][names.index("created_at")], datetime)
