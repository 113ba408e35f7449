"""How often the platform's consumers ask the broker for metadata: a pattern subscription often
enough to see a new topic soon, a fixed topic list only when it has to (issue 21)."""

from __future__ import annotations

import time
import uuid

import pytest
from devstack.topics import ensure_topics
from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource

pytestmark = pytest.mark.kafka


def last_metadata(source: KafkaRecordSource) -> float:
    return float(source._consumer._client.cluster._last_successful_refresh_ms)


def test_a_pattern_subscription_finds_a_new_topic_and_a_topic_list_stays_quiet(
    kafka_bootstrap: str,
) -> None:
    prefix = f"meta{uuid.uuid4().hex[:10]}"
    # Not ``.v1`` names: the audit consumer of any stack on this broker reads every ``*.v1``
    # topic, and these records are not events.
    first, later = f"{prefix}.events.test", f"{prefix}.provider-new.test"
    ensure_topics(kafka_bootstrap, {first: 1})
    # Default settings both: the pattern one is the audit consumer's shape.
    pattern = KafkaRecordSource(kafka_bootstrap, f"{prefix}-all", pattern=rf"^{prefix}\..*\.test$")
    fixed = KafkaRecordSource(kafka_bootstrap, f"{prefix}-one", topics=[first])
    publisher = KafkaPublisher(kafka_bootstrap, client_id=prefix)
    try:
        # Settled: the fixed member has read a record (its start-up lookups, which may refresh
        # metadata once, are over).
        publisher.publish(first, [(b"k", b"submitted", [])])
        read: list[str] = []
        deadline = time.monotonic() + 60
        while not read and time.monotonic() < deadline:
            read += [r.topic for r in fixed.poll(0.5)]
            pattern.poll(0.5)
        assert read == [first]
        started, fixed_metadata = time.monotonic(), last_metadata(fixed)
        ensure_topics(kafka_bootstrap, {later: 1})
        publisher.publish(later, [(b"k", b"offered", [])])
        seen: list[str] = []
        deadline = time.monotonic() + 60
        # Until the pattern member has read the new topic's record, and for longer than the
        # pattern's refresh interval (10 s), so the fixed member had its chance to refresh too.
        while time.monotonic() < deadline and (not seen or time.monotonic() - started < 12):
            seen += [r.topic for r in pattern.poll(0.5)]
            fixed.poll(0.5)
        assert later in seen
        assert last_metadata(fixed) == fixed_metadata
    finally:
        pattern.close()
        fixed.close()
        publisher.close()
