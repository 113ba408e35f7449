"""The publisher's side of a relay cycle on a real broker: a cycle's records, over several
partitions and topics, go out on one wake-up of kafka-python's I/O thread, all acknowledged
and in order per key (issue 21)."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from devstack.topics import ensure_topics, read_from_start
from kafka.producer.sender import Sender
from rx_messaging.kafka import KafkaPublisher

pytestmark = pytest.mark.kafka


def read_all(
    bootstrap: str, topics: list[str], count: int
) -> list[tuple[str, bytes | None, bytes | None]]:
    records = read_from_start(bootstrap, topics, lambda seen: len(seen) >= count, timeout=60)
    return [(r.topic, r.key, r.value) for r in records]


def test_a_cycle_over_many_partitions_wakes_the_io_thread_once_and_keeps_order_per_key(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"pub{uuid.uuid4().hex[:10]}"
    # Not ``.v1`` names: the audit consumer of any stack on this broker reads every ``*.v1``.
    topics = [f"{prefix}.decisions.test", f"{prefix}.provider.test"]
    ensure_topics(kafka_bootstrap, dict.fromkeys(topics, 3))
    publisher = KafkaPublisher(kafka_bootstrap, client_id=prefix)
    try:
        publisher.publish_many({topic: [(b"warm", b"0", [])] for topic in topics})
        wakeups = [0]
        real = Sender.wakeup

        def counted(sender: Sender) -> None:
            wakeups[0] += 1
            real(sender)

        monkeypatch.setattr(Sender, "wakeup", counted)
        keys = [f"r-{n}".encode() for n in range(8)]  # over every partition of both topics
        batch = [(key, f"{step}".encode(), [("step", b"x")]) for step in (1, 2) for key in keys]
        publisher.publish_many(dict.fromkeys(topics, batch))
        monkeypatch.undo()
        assert wakeups[0] == 1  # the flush's; before, one per partition the sends opened
    finally:
        publisher.close()
    got = read_all(kafka_bootstrap, topics, 2 + 2 * len(batch))
    steps: dict[tuple[str, bytes | None], list[bytes | None]] = defaultdict(list)
    for topic, key, value in got:
        if key != b"warm":
            steps[(topic, key)].append(value)
    assert steps == {(topic, key): [b"1", b"2"] for topic in topics for key in keys}


def test_a_topic_the_publisher_has_not_seen_yet_is_published_to(kafka_bootstrap: str) -> None:
    """Its partitions must first be fetched by the I/O thread, which a quiet send would leave
    asleep until the send timed out."""
    prefix = f"pub{uuid.uuid4().hex[:10]}"
    known, new = f"{prefix}.known.test", f"{prefix}.new.test"
    ensure_topics(kafka_bootstrap, {known: 1, new: 2})
    publisher = KafkaPublisher(kafka_bootstrap, client_id=prefix, max_block_ms=20_000)
    try:
        publisher.publish(known, [(b"k", b"first", [])])
        publisher.publish_many({known: [(b"k", b"second", [])], new: [(b"k", b"first", [])]})
    finally:
        publisher.close()
    got = read_all(kafka_bootstrap, [known, new], 3)
    assert sorted(got) == [(known, b"k", b"first"), (known, b"k", b"second"), (new, b"k", b"first")]
