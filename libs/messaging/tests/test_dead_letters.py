"""A poison record on a topic created without its dead-letter topic does not stall its
consumer: the dead-letter topic is created, the record parked there, the next one applied."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from devstack.polling import wait_for
from devstack.topics import ensure_topics
from kafka import KafkaConsumer, TopicPartition
from rx_contracts import encode, examples, wrap
from rx_contracts.topics import dead_letter_topic
from rx_messaging.database import make_engine
from rx_messaging.kafka import KafkaPublisher
from rx_messaging.runner import run_consumer
from rx_messaging.tables import InboxMessage
from sqlmodel import SQLModel

pytestmark = pytest.mark.kafka


def test_poison_on_a_topic_without_its_dead_letter_topic_is_parked_and_the_next_applied(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Not a ``.v1`` name: the audit consumer of any stack on this broker reads those.
    topic = f"nodlq-{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, {topic: 1}, dead_letters=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'dlq.db'}")
    SQLModel.metadata.create_all(engine, tables=[InboxMessage.__table__])  # type: ignore[attr-defined]
    applied: list[str] = []
    group = f"it-nodlq-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    consumer = threading.Thread(
        target=run_consumer,
        args=(
            "nodlq",
            engine,
            kafka_bootstrap,
            group,
            lambda session, envelope, record: applied.append(envelope.id),
            tmp_path,
        ),
        kwargs={"topics": [topic], "stop": stop, "serve": False},
        daemon=True,
    )
    consumer.start()
    publisher = KafkaPublisher(kafka_bootstrap, client_id="it-nodlq")
    good = wrap(examples.referral_submitted("r-after-poison"), source="/tests")
    try:
        publisher.publish(topic, [(b"r-poison", b"not JSON", []), encode(good)])
        wait_for("the record after the poison applied", lambda: applied == [good.id], timeout=90)
    finally:
        stop.set()
        consumer.join(timeout=30)
        publisher.close()
        engine.dispose()
    reader = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap.split(","),
        auto_offset_reset="earliest",
        group_id=group,
        enable_auto_commit=False,
    )
    # The consumer moved on: its offsets passed both records (a stalled one never commits).
    assert reader.committed(TopicPartition(topic, 0)) == 2
    reader.assign([TopicPartition(dead_letter_topic(topic), 0)])
    parked: list[bytes | None] = []
    try:
        deadline = time.monotonic() + 30
        while not parked and time.monotonic() < deadline:
            for records in reader.poll(timeout_ms=500).values():
                parked += [r.value for r in records]
    finally:
        reader.close()
    assert parked == [b"not JSON"]
