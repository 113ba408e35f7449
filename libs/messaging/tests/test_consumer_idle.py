"""An idle consumer waits long in its poll (issue 21) and still answers at once: a record ends
the wait, a stop request wakes it, and settled offsets are committed when due, on a real broker."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from devstack.polling import wait_for
from kafka import KafkaConsumer, TopicPartition
from rx_contracts import encode, examples, wrap
from rx_messaging.database import make_engine
from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource
from rx_messaging.records import Record
from rx_messaging.runner import run_consumer
from rx_messaging.tables import InboxMessage
from sqlmodel import SQLModel

pytestmark = pytest.mark.kafka

AN_HOUR = 3600.0
"""A poll this long never ends by itself within a test: whatever ends it is what is tested."""


def _poll_in_thread(source: KafkaRecordSource) -> tuple[threading.Thread, list[list[Record]]]:
    got: list[list[Record]] = []
    thread = threading.Thread(target=lambda: got.append(source.poll(AN_HOUR)), daemon=True)
    thread.start()
    return thread, got


def test_a_long_poll_ends_when_a_record_arrives_and_when_it_is_woken(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    source = KafkaRecordSource(
        kafka_bootstrap, f"it-idle-{uuid.uuid4().hex[:8]}", topics=[unique_topic]
    )
    publisher = KafkaPublisher(kafka_bootstrap, client_id="it-idle")
    try:
        waiting, got = _poll_in_thread(source)
        publisher.publish(unique_topic, [(b"k", b"first", [])])
        waiting.join(timeout=60)
        assert not waiting.is_alive(), "the poll did not return when a record arrived"
        assert [r.value for r in got[0]] == [b"first"]

        waiting, got = _poll_in_thread(source)
        waiting.join(timeout=1)  # well inside its wait (or on its way there)
        source.wakeup()
        waiting.join(timeout=30)
        assert not waiting.is_alive(), "wakeup() did not end the poll"
        assert got == [[]]

        source.wakeup()  # none under way: the next poll returns at once, once
        assert source.poll(AN_HOUR) == []
        publisher.publish(unique_topic, [(b"k", b"second", [])])
        assert [r.value for r in source.poll(AN_HOUR)] == [b"second"]
    finally:
        source.close()
        publisher.close()


def test_an_idle_consumer_commits_when_due_and_a_stop_ends_its_long_poll(
    kafka_bootstrap: str, unique_topic: str, tmp_path: Path
) -> None:
    """Polling for an hour: the record is applied at once, its offset committed while the
    consumer waits for more, and setting ``stop`` ends the consumer."""
    engine = make_engine(f"sqlite:///{tmp_path / 'idle.db'}")
    SQLModel.metadata.create_all(engine, tables=[InboxMessage.__table__])  # type: ignore[attr-defined]
    group = f"it-idle-{uuid.uuid4().hex[:8]}"
    applied: list[str] = []
    stop = threading.Event()
    consumer = threading.Thread(
        target=run_consumer,
        args=(
            "idle",
            engine,
            kafka_bootstrap,
            group,
            lambda session, envelope, record: applied.append(envelope.id),
            tmp_path,
        ),
        kwargs={"topics": [unique_topic], "stop": stop, "serve": False, "idle_poll": AN_HOUR},
        daemon=True,
    )
    consumer.start()
    publisher = KafkaPublisher(kafka_bootstrap, client_id="it-idle")
    reader = KafkaConsumer(bootstrap_servers=kafka_bootstrap.split(","), group_id=group)
    try:
        envelope = wrap(examples.referral_submitted("r-idle"), source="/tests")
        key, value, headers = encode(envelope)
        publisher.publish(unique_topic, [(key, value, headers)])
        wait_for("the record applied", lambda: applied == [envelope.id], timeout=60)

        def committed() -> int:
            return sum(
                reader.committed(TopicPartition(unique_topic, p)) or 0
                for p in reader.partitions_for_topic(unique_topic) or ()
            )

        wait_for("its offset committed while idle", lambda: committed() == 1, timeout=30)
    finally:
        stop.set()
        consumer.join(timeout=30)
        reader.close()
        publisher.close()
        engine.dispose()
    assert not consumer.is_alive(), "the stop request waited out the poll"
