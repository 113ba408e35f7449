"""One scenario suite, two brokers: the in-memory fake used by unit tests and real Kafka.
If the fake drifts from the Kafka behaviour our relay and consumers rely on, this fails."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from devstack.topics import ensure_topics
from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource
from rx_messaging.ports import Publisher, RecordSource
from rx_messaging.records import PublishError, Record


@dataclass
class Harness:
    """Makes topics, a publisher and group members on one kind of broker."""

    create_topic: Callable[[str, int], None]
    publisher: Publisher
    source: Callable[[str, list[str]], RecordSource]


@pytest.fixture(params=["in-memory", "kafka"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    opened: list[RecordSource] = []
    if request.param == "in-memory":
        broker = InMemoryBroker()
        publisher: Publisher = InMemoryPublisher(broker)

        def create(name: str, partitions: int) -> None:
            broker.create_topic(name, partitions)

        def source(group: str, topics: list[str]) -> RecordSource:
            return InMemoryRecordSource(broker, group, topics=topics)

    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        publisher = KafkaPublisher(bootstrap, client_id="contract", max_block_ms=5000)

        def create(name: str, partitions: int) -> None:
            ensure_topics(bootstrap, {name: partitions})

        def source(group: str, topics: list[str]) -> RecordSource:
            return KafkaRecordSource(bootstrap, group, topics=topics)

    def tracked(group: str, topics: list[str]) -> RecordSource:
        opened.append(source(group, topics))
        return opened[-1]

    yield Harness(create, publisher, tracked)
    for s in opened:
        s.close()
    publisher.close()


def fresh(prefix: str) -> str:
    # No ".v1" suffix: the audit consumer subscribes to every *.v1 topic on a shared broker.
    return f"test-contract-{prefix}-{uuid.uuid4().hex[:10]}"


def poll_until(source: RecordSource, count: int, timeout: float = 30) -> list[Record]:
    """Bounded polling: a Kafka group member needs a moment to get its partitions."""
    got: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += source.poll(0.5)
    return got


def test_a_new_group_reads_from_the_beginning_and_same_key_keeps_order(harness: Harness) -> None:
    topic = fresh("order")
    harness.create_topic(topic, 3)
    records = [
        (f"r-{i % 4}".encode(), f"v{i}".encode(), [("n", str(i).encode())]) for i in range(20)
    ]
    harness.publisher.publish(topic, records)
    got = poll_until(harness.source(fresh("g"), [topic]), 20)
    assert len(got) == 20
    for key in {k for k, _, _ in records}:
        mine = [r for r in got if r.key == key]
        assert [r.value for r in mine] == [v for k, v, _ in records if k == key]
        assert len({r.partition for r in mine}) == 1, "one key, one partition"
    assert dict(got[0].headers)["n"].isdigit()


def test_a_new_member_of_a_group_resumes_after_the_committed_offsets(harness: Harness) -> None:
    topic, group = fresh("resume"), fresh("g")
    harness.create_topic(topic, 1)
    harness.publisher.publish(topic, [(b"k", b"one", []), (b"k", b"two", [])])
    first = harness.source(group, [topic])
    [one, _] = poll_until(first, 2)
    first.commit({(one.topic, one.partition): one.offset + 1})  # only the first is done
    first.close()
    again = poll_until(harness.source(group, [topic]), 1)
    assert [r.value for r in again] == [b"two"]


def test_seek_replays_a_record_whose_effects_failed(harness: Harness) -> None:
    topic = fresh("seek")
    harness.create_topic(topic, 1)
    harness.publisher.publish(topic, [(b"k", b"a", []), (b"k", b"b", [])])
    source = harness.source(fresh("g"), [topic])
    [a, _] = poll_until(source, 2)
    source.seek(a.topic, a.partition, a.offset)
    assert [r.value for r in poll_until(source, 2)] == [b"a", b"b"]


def test_publishing_to_a_topic_that_does_not_exist_fails(harness: Harness) -> None:
    # Topic auto-creation is off: a typo must fail loudly, not create a stray topic.
    with pytest.raises(PublishError):
        harness.publisher.publish(fresh("missing"), [(b"k", b"v", [])], timeout=5)
