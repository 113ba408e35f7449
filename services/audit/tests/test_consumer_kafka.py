"""Over a real broker: the pattern subscription picks up topics created after the consumer
started, and each event is recorded once."""

from __future__ import annotations

import time
import uuid

import pytest
from audit.adapters.tables import ENTRY
from audit.entrypoints.workers import record_event
from devstack.topics import ensure_topics
from rx_contracts import encode
from rx_messaging.consumer import InboxConsumer
from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from .conftest import submitted

pytestmark = pytest.mark.kafka


def recorded(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(ENTRY.c.topic).order_by(ENTRY.c.sequence)).scalars())


def test_a_topic_created_after_start_is_consumed_too(engine: Engine, kafka_bootstrap: str) -> None:
    prefix = f"auditk{uuid.uuid4().hex[:10]}"
    first, later = f"{prefix}.events.v1", f"{prefix}.access.v1"
    ensure_topics(kafka_bootstrap, {first: 3, first + ".dlq": 1})
    # Only this test's topics: the session broker holds every other test's *.v1 topics too.
    source = KafkaRecordSource(
        kafka_bootstrap,
        f"{prefix}-audit",
        pattern=rf"^{prefix}\.[a-z0-9-]+\.v[0-9]+$",
        metadata_max_age_ms=1000,
    )
    publisher = KafkaPublisher(kafka_bootstrap, client_id=prefix)
    consumer = InboxConsumer(f"{prefix}-audit", source, engine, record_event, publisher)
    try:
        publisher.publish(first, [encode(submitted(1)), encode(submitted(1))])
        ensure_topics(kafka_bootstrap, {later: 1})
        publisher.publish(later, [encode(submitted(2))])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(recorded(engine)) < 2:
            consumer.consume_once(timeout=0.5)
    finally:
        source.close()
        publisher.close()

    assert sorted(recorded(engine)) == [later, first]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ENTRY)).scalar_one() == 2
