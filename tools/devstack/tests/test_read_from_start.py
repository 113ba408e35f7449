"""``read_from_start``: what tests use to see what a service published, on the real broker."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from devstack.topics import TopicError, read_from_start
from kafka import KafkaProducer

pytestmark = pytest.mark.kafka


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def test_every_record_from_the_first_offset_in_order_per_key(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    sent = [(f"k{i % 4}".encode(), f"v{i}".encode()) for i in range(40)]
    produce(kafka_bootstrap, unique_topic, sent)

    read = read_from_start(kafka_bootstrap, [unique_topic], lambda seen: len(seen) >= 40)

    assert sorted((r.key, r.value) for r in read) == sorted(sent)
    for key in {k for k, _ in sent}:
        assert [r.value for r in read if r.key == key] == [v for k, v in sent if k == key]


def test_a_record_arriving_while_it_waits_and_one_just_behind_are_both_read(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)

    def later() -> None:
        time.sleep(1.0)
        producer.send(unique_topic, key=b"r", value=b"first").get(timeout=10)
        time.sleep(0.2)
        producer.send(unique_topic, key=b"r", value=b"duplicate").get(timeout=10)

    writer = threading.Thread(target=later)
    writer.start()
    try:
        read = read_from_start(
            kafka_bootstrap, [unique_topic], lambda seen: len(seen) >= 1, settle=5.0
        )
    finally:
        writer.join()
        producer.close()

    assert [r.value for r in read] == [b"first", b"duplicate"]


def test_a_topic_that_never_appears_is_named_in_the_error(kafka_bootstrap: str) -> None:
    missing = f"never-created-{uuid.uuid4().hex[:8]}"
    with pytest.raises(TopicError, match=missing):
        read_from_start(kafka_bootstrap, [missing], lambda seen: True, timeout=1.5)
