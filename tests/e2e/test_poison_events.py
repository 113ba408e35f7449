"""Poison on every consumed topic: a malformed record, a known event in a version nobody reads
and a record over the event size limit are parked on ``<topic>.dlq`` by every service that
consumes the topic, with the reason, and each consumer keeps going."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer
from rx_contracts import examples, wrap
from rx_contracts.channels import channels
from rx_contracts.envelope import MAX_EVENT_BYTES, KafkaRecord, encode
from rx_contracts.topics import dead_letter_topic

from .conftest import ACCESS, as_client, audit_entries, submit, timeline, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

SERVICES = ("referrals", "routing", "audit")


def consumed_topics() -> dict[str, tuple[str, ...]]:
    """Every topic a service of the platform consumes, and which services consume it."""
    return {
        c.topic: readers
        for c in channels()
        if (readers := tuple(s for s in c.consumers if s in SERVICES))
    }


def poison(topic: str, event_type: str) -> dict[str, KafkaRecord]:
    """Three records no consumer can apply, each looking like an event of ``topic`` (CloudEvents
    headers, the type the topic carries) and keyed by its own id."""
    made: dict[str, KafkaRecord] = {}
    name = event_type.rpartition(".")[0]
    for kind, ce_type in (
        ("malformed", event_type),
        ("unknown-version", f"{name}.v9"),
        ("oversized", event_type),
    ):
        key = f"poison-{kind}-{uuid.uuid4().hex[:8]}"
        real = encode(wrap(examples.referral_submitted(key), source="/tests/poison"))
        headers = [(k, ce_type.encode() if k == "ce_type" else v) for k, v in real.headers]
        value = {
            "malformed": real.value[: len(real.value) // 2],  # cut off mid-JSON
            "unknown-version": real.value,
            "oversized": json.dumps(
                {**json.loads(real.value), "notes": "x" * (MAX_EVENT_BYTES + 1)}
            ).encode(),
        }[kind]
        made[kind] = KafkaRecord(key.encode(), value, headers)
    return made


REASONS = {
    "malformed": "not JSON",
    "unknown-version": "unknown version 'v9'",
    "oversized": f"over the {MAX_EVENT_BYTES}-byte event limit",
}


def read_dead_letters(
    bootstrap: str, topics: list[str], done: Callable[[dict[tuple[str, str, str], str]], bool]
) -> dict[tuple[str, str, str], str]:
    """(dead-letter topic, consumer group, key) → the error recorded with it, read from the
    start by a fresh consumer until ``done`` holds (or 90 s pass)."""
    consumer = KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap.split(","),
        group_id=f"e2e-dlq-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    found: dict[tuple[str, str, str], str] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not done(found):
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers}
                    found[(r.topic, headers["dlq_consumer"], r.key.decode())] = headers["dlq_error"]
    finally:
        consumer.close(autocommit=False)
    return found


def test_every_consumer_parks_poison_from_every_topic_it_reads_and_keeps_going(
    broker_factory, stack_factory
) -> None:
    broker = broker_factory()
    stack = stack_factory(broker.bootstrap_servers)
    topics = consumed_topics()
    expected: dict[tuple[str, str, str], str] = {}
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap_servers.split(","),
        max_request_size=4 * MAX_EVENT_BYTES,
    )
    try:
        for topic, readers in topics.items():
            event_type = next(c for c in channels() if c.topic == topic).events[0].EVENT_TYPE
            for kind, record in poison(topic, event_type).items():
                producer.send(topic, key=record.key, value=record.value, headers=record.headers)
                for service in readers:
                    group = f"{stack.group_prefix}{service}"
                    expected[(dead_letter_topic(topic), group, record.key.decode())] = kind
        producer.flush(30)
    finally:
        producer.close()

    # Behind the poison, a referral goes its whole way: every consumer moved past it.
    referral = submit(stack)
    url = f"{stack.url('referrals')}/referrals/{referral['id']}"
    gp_reads = as_client(stack, "b81001")

    def through() -> bool:
        status = httpx.get(url, headers=gp_reads, timeout=10).json()["status"]  # a read: audited
        reads = [
            e for e in audit_entries(stack, referral["id"], with_reads=True) if e["type"] == ACCESS
        ]
        if not reads:
            return False  # the audit log has not recorded the referral yet: its timeline is a 404
        routed = timeline(stack, referral["id"]) == ["ReferralSubmitted", "ReferralRouted"]
        return status == "routed" and routed

    wait_for("the referral routed, recorded as routed and its reads audited", through, 60)

    parked = read_dead_letters(
        broker.bootstrap_servers,
        sorted({topic for topic, _, _ in expected}),
        lambda found: expected.keys() <= found.keys(),
    )
    missing = sorted(set(expected) - set(parked))
    assert not missing, f"poison not dead-lettered: {missing}"
    for where, kind in expected.items():
        assert REASONS[kind] in parked[where], (where, parked[where])
    assert {group.removeprefix(stack.group_prefix) for _, group, _ in expected} == set(SERVICES)
