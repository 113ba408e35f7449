"""A consumer that joins its group gets its partitions however short its polls are: a poll
that ends (its timeout, or ``wakeup``) while the group's join is under way must not lose the
assignment the join brings."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from devstack.topics import ensure_topics
from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource

pytestmark = pytest.mark.kafka

MEMBERS = 40
"""Fresh members tried, one after another. Before the fix, about one in seven polling in 10 ms
steps never read anything (seen 6 in 40 on a 2-core machine)."""


def topic_with_one_record(bootstrap: str) -> tuple[str, str]:
    """(prefix, topic): a new topic ``<prefix>.events.test`` holding one record, ``there``.
    Not a ``.v1`` name: the audit consumer of any stack on this broker reads every ``*.v1``."""
    prefix = f"join{uuid.uuid4().hex[:10]}"
    topic = f"{prefix}.events.test"
    ensure_topics(bootstrap, {topic: 3})
    publisher = KafkaPublisher(bootstrap, client_id=prefix)
    try:
        publisher.publish(topic, [(b"k", b"there", [])])
    finally:
        publisher.close()
    return prefix, topic


@pytest.mark.parametrize("subscription", ["topics", "pattern"])
def test_a_fresh_member_polling_in_short_steps_reads_what_is_there(
    kafka_bootstrap: str, subscription: str
) -> None:
    prefix, topic = topic_with_one_record(kafka_bootstrap)

    stuck: list[int] = []
    for member in range(MEMBERS):
        group = f"{prefix}-{member}"
        source = (
            KafkaRecordSource(kafka_bootstrap, group, topics=[topic])
            if subscription == "topics"
            else KafkaRecordSource(kafka_bootstrap, group, pattern=rf"^{prefix}\..*\.test$")
        )
        try:
            read: list[bytes | None] = []
            deadline = time.monotonic() + 15
            while not read and time.monotonic() < deadline:
                read += [r.value for r in source.poll(0.01)]
        finally:
            source.close()
        if read != [b"there"]:
            stuck.append(member)
            break  # one is enough, and each costs the whole wait
    assert not stuck, f"member {stuck[0]} read nothing in 15 s (its assignment was lost)"


def test_a_fresh_member_is_handed_its_partitions_by_its_first_join(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No empty first assignment and second rebalance at every start (and no warning in the
    worker's log saying a topic it reads has no partitions). Several members, one after
    another: the first join of a broker's first group can be slowed by the broker itself
    (coordinator still loading), which hides the race."""
    prefix, topic = topic_with_one_record(kafka_bootstrap)

    caplog.set_level(logging.WARNING, logger="kafka.coordinator")
    generations: list[int] = []
    for member in range(5):
        source = KafkaRecordSource(kafka_bootstrap, f"{prefix}-{member}", topics=[topic])
        try:
            read: list[bytes | None] = []
            deadline = time.monotonic() + 15
            while not read and time.monotonic() < deadline:
                read += [r.value for r in source.poll(0.2)]
            generations.append(source._consumer._coordinator._generation.generation_id)
        finally:
            source.close()
        assert read == [b"there"]

    assert not [r.message for r in caplog.records if "No partition metadata" in r.message]
    assert generations == [1] * 5, "joins each group needed to hand out the partitions"
