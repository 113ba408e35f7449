"""Outbox relay and inbox consumer over the real broker and a real SQLite database."""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path

import pytest
from devstack.topics import ensure_topics
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from rx_contracts import encode, examples, wrap
from rx_contracts.topics import dead_letter_topic
from rx_messaging.consumer import InboxConsumer
from rx_messaging.database import make_engine
from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource
from rx_messaging.outbox import add_to_outbox
from rx_messaging.relay import OutboxRelay
from rx_messaging.tables import InboxMessage, OutboxMessage
from sqlmodel import Session, SQLModel, col, func, select

pytestmark = pytest.mark.kafka


def event(referral_id: str):
    return wrap(examples.referral_submitted(referral_id), source="/tests")


@pytest.fixture
def engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'svc.db'}")
    SQLModel.metadata.create_all(engine, tables=[OutboxMessage.__table__, InboxMessage.__table__])
    return engine


def pending_count(engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).where(col(OutboxMessage.sent_at).is_(None))).one()


def drain(consumer: InboxConsumer, until, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        consumer.consume_once(timeout=0.5)


def test_relayed_outbox_rows_reach_a_fresh_consumer_group_once_and_in_order(
    kafka_bootstrap, unique_topic, engine
) -> None:
    events = [event(f"r-{i % 3}") for i in range(12)]
    with Session(engine) as s:
        for env in events:
            add_to_outbox(s, env, [unique_topic])
        s.commit()
    publisher = KafkaPublisher(kafka_bootstrap, client_id="it-relay")
    try:
        assert OutboxRelay(engine, publisher).relay_once() == 12
    finally:
        publisher.close()
    assert pending_count(engine) == 0

    applied: list[tuple[str, str]] = []
    dlq = KafkaPublisher(kafka_bootstrap, client_id="it-dlq")
    source = KafkaRecordSource(kafka_bootstrap, f"it-{uuid.uuid4().hex[:8]}", topics=[unique_topic])
    consumer = InboxConsumer(
        "it", source, engine, lambda s, env, r: applied.append((env.subject, env.id)), dlq
    )
    try:
        drain(consumer, lambda: len(applied) >= 12)
    finally:
        source.close()
        dlq.close()
    assert sorted(i for _, i in applied) == sorted(e.id for e in events)
    for key in {"r-0", "r-1", "r-2"}:
        assert [i for k, i in applied if k == key] == [e.id for e in events if e.subject == key]


def test_an_event_delivered_twice_is_applied_once_and_poison_is_parked(
    kafka_bootstrap, unique_topic, engine
) -> None:
    ensure_topics(kafka_bootstrap, {dead_letter_topic(unique_topic): 1})
    env = event("r-dup")
    publisher = KafkaPublisher(kafka_bootstrap, client_id="it-dup")
    record = encode(env)
    publisher.publish(
        unique_topic,
        [tuple(record), (b"r-bad", b"{}", [("ce_specversion", b"0.3")]), tuple(record)],
    )

    applied: list[str] = []
    source = KafkaRecordSource(kafka_bootstrap, f"it-{uuid.uuid4().hex[:8]}", topics=[unique_topic])
    consumer = InboxConsumer("it", source, engine, lambda s, e, r: applied.append(e.id), publisher)
    seen = {"n": 0}

    def count_all() -> bool:
        with Session(engine) as s:
            seen["n"] = s.exec(select(func.count()).select_from(InboxMessage)).one()
        return seen["n"] >= 1 and len(applied) >= 1

    try:
        drain(consumer, count_all)
        drain(
            consumer, lambda: False, timeout=2
        )  # give the duplicate and the poison time to arrive
    finally:
        source.close()
    assert applied == [env.id]

    parked = KafkaRecordSource(
        kafka_bootstrap, f"it-dlq-{uuid.uuid4().hex[:8]}", topics=[dead_letter_topic(unique_topic)]
    )
    try:
        deadline, got = time.monotonic() + 30, []
        while not got and time.monotonic() < deadline:
            got = parked.poll(0.5)
    finally:
        parked.close()
        publisher.close()
    assert [r.key for r in got] == [b"r-bad"]
    assert b"CloudEvents" in dict(got[0].headers)["dlq_error"]


def committed_offsets(bootstrap: str, group: str, topic: str) -> int:
    """How many records of ``topic`` the group's committed offsets cover, asked of the broker."""
    # A consumer that never subscribes does not join the group, so it starts no rebalance.
    reader = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group)
    try:
        return sum(reader.committed(TopicPartition(topic, p)) or 0 for p in range(3))
    finally:
        reader.close()


def test_a_member_losing_partitions_in_a_rebalance_commits_them_first(
    kafka_bootstrap, unique_topic, engine
) -> None:
    publisher = KafkaPublisher(kafka_bootstrap, client_id="it-rebalance")
    try:
        publisher.publish(unique_topic, [encode(event(f"r-{i}")) for i in range(9)])
    finally:
        publisher.close()
    group = f"it-{uuid.uuid4().hex[:8]}"
    applied: list[str] = []
    dlq = KafkaPublisher(kafka_bootstrap, client_id="it-dlq")
    first = KafkaRecordSource(kafka_bootstrap, group, topics=[unique_topic])
    consumer = InboxConsumer(
        "it", first, engine, lambda s, env, r: applied.append(env.id), dlq, commit_interval=60
    )
    second: KafkaRecordSource | None = None
    try:
        drain(consumer, lambda: len(applied) >= 9)
        assert committed_offsets(kafka_bootstrap, group, unique_topic) == 0  # still waiting
        second = KafkaRecordSource(kafka_bootstrap, group, topics=[unique_topic])
        stop = threading.Event()
        joining = threading.Thread(
            target=lambda: [second.poll(0.2) for _ in iter(stop.is_set, True)]
        )
        joining.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not second._consumer.assignment():
                assert first.poll(0.2) == []  # the rebalance happens inside this poll
        finally:
            stop.set()
            joining.join()
        assert committed_offsets(kafka_bootstrap, group, unique_topic) == 9
    finally:
        if second is not None:
            second.close()
        first.close()
        dlq.close()


def test_a_member_put_out_of_its_group_with_offsets_overdue_rejoins_and_goes_on(
    kafka_bootstrap, unique_topic, engine
) -> None:
    """The audit consumer's case (a pattern subscription) after a broker outage: put out of its
    group with settled offsets overdue, it must rejoin and go on, not retry its refused offset
    commit with zero-wait polls that never rejoin."""
    publisher = KafkaPublisher(kafka_bootstrap, client_id="it-evicted")
    dlq = KafkaPublisher(kafka_bootstrap, client_id="it-dlq")
    group = f"it-{uuid.uuid4().hex[:8]}"
    source = KafkaRecordSource(
        kafka_bootstrap,
        group,
        pattern=re.escape(unique_topic),
        # Put out of the group by its own client when it does not poll for 2 s.
        session_timeout_ms=1_000,
        heartbeat_interval_ms=200,
        max_poll_interval_ms=2_000,
    )
    now = [0.0]
    applied: list[str] = []
    consumer = InboxConsumer(
        "it",
        source,
        engine,
        lambda s, env, r: applied.append(env.id),
        dlq,
        commit_interval=1.0,
        clock=lambda: now[0],
    )

    def run_until(done, timeout: float = 30) -> None:
        """As the worker loop runs a consumer: a failure is retried after a pause."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            try:
                consumer.consume_once(timeout=0.5)
            except Exception:
                time.sleep(0.5)

    try:
        publisher.publish(unique_topic, [encode(event(f"r-{i}")) for i in range(3)])
        run_until(lambda: len(applied) >= 3)
        assert len(applied) == 3
        time.sleep(4)  # no poll meanwhile: the client leaves the group
        now[0] += 60  # the settled offsets are overdue
        publisher.publish(unique_topic, [encode(event(f"r-{i}")) for i in range(3, 5)])
        run_until(
            lambda: (
                len(set(applied)) >= 5
                and committed_offsets(kafka_bootstrap, group, unique_topic) >= 5
            )
        )
        assert len(set(applied)) == 5
        assert committed_offsets(kafka_bootstrap, group, unique_topic) == 5
    finally:
        source.close()
        publisher.close()
        dlq.close()
