"""Ingest in poll batches: a batch's entries are written together and the chain head moves
once per batch, and the chain stays whole across batches and record-by-record retries."""

from __future__ import annotations

from typing import Any

from audit.config import EVERY_V1_TOPIC
from audit.entrypoints.workers import record_event
from rx_contracts import encode
from rx_messaging.consumer import InboxConsumer
from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .conftest import submitted, verify_database

REFERRALS = "referrals.events.v1"


def traced(engine: Engine) -> list[str]:
    """Every statement SQLite runs on ``engine``'s connections from now on, as SQLite saw it
    (the driver-level view: an executemany shows once per row)."""
    engine.dispose()
    statements: list[str] = []

    def trace(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    event.listen(engine, "connect", trace)
    return statements


def test_the_chain_head_is_written_once_per_batch(engine: Engine) -> None:
    broker = InMemoryBroker()
    broker.create_topic(REFERRALS, 3)
    source = InMemoryRecordSource(broker, "audit", pattern=EVERY_V1_TOPIC)
    consumer = InboxConsumer("audit", source, engine, record_event, InMemoryPublisher(broker))
    statements = traced(engine)

    for batch in range(2):
        for n in range(batch * 40, batch * 40 + 40):
            broker.append(REFERRALS, *encode(submitted(n)))
        assert consumer.consume_once().applied == 40

    head_writes = [s.split()[0] for s in statements if "audit_chain_head" in s.split("WHERE")[0]]
    assert head_writes.count("SELECT") == 2  # read once per batch
    assert [w for w in head_writes if w != "SELECT"] == ["INSERT", "UPDATE"]
    entries = [s for s in statements if s.startswith("INSERT INTO audit_entry ")]
    assert len(entries) == 80
    result = verify_database(engine, lambda _: [])
    assert (result.ok, result.entries) == (True, 80)
