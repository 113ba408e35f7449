"""Routing over the real broker: a reject → re-route chain through Kafka with redelivery and
poison, and SLA clocks that survive a killed and restarted clock worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from devstack.topics import ensure_topics, read_from_start
from routing.adapters.tables import ClockRow, DecisionRow
from routing.bootstrap import Container, bootstrap
from routing.config import Settings
from routing.entrypoints.seed import seed_demo
from routing.entrypoints.workers import handle_referral_event
from routing.service_layer import admin
from rx_contracts import (
    Envelope,
    Priority,
    ReferralRejected,
    RejectionReason,
    ServiceType,
    decode,
    encode,
)
from rx_contracts.topics import all_topics, dead_letter_topic
from rx_messaging.consumer import InboxConsumer
from rx_messaging.kafka import KafkaPublisher, KafkaRecordSource
from rx_messaging.relay import OutboxRelay
from sqlmodel import Session, col, select

from .support import consume, submitted, transition

pytestmark = pytest.mark.kafka


def wait_for(what: str, probe: Callable[[], object], timeout: float = 30) -> None:
    """Bounded polling: fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read(bootstrap: str, topic: str, key: str, count: int) -> list[Envelope]:
    """The events keyed ``key`` on ``topic``, read from the start, once ``count`` arrived
    (and a moment longer, so a duplicate would show)."""
    wanted = key.encode()
    records = read_from_start(
        bootstrap, [topic], lambda seen: sum(r.key == wanted for r in seen) >= count
    )
    return [decode(r.key, r.value, list(r.headers)) for r in records if r.key == wanted]


def names(events: list[Envelope]) -> list[str]:
    return [e.type.split(".")[2] for e in events]


@pytest.fixture
def publisher(kafka_bootstrap: str) -> Iterator[KafkaPublisher]:
    ensure_topics(kafka_bootstrap, all_topics())
    publisher = KafkaPublisher(kafka_bootstrap, client_id="it-routing")
    yield publisher
    publisher.close()


def test_a_rejected_referral_is_rerouted_over_kafka_until_nobody_is_left(
    kafka_bootstrap, unique_topic, publisher, container, clock
) -> None:
    ensure_topics(kafka_bootstrap, {dead_letter_topic(unique_topic): 1})
    rid = f"it-{uuid.uuid4()}"
    source = KafkaRecordSource(kafka_bootstrap, f"it-{uuid.uuid4().hex[:8]}", topics=[unique_topic])
    consumer = InboxConsumer(
        "routing", source, container.engine, partial(handle_referral_event, container), publisher
    )
    relay = OutboxRelay(container.engine, publisher)

    def send(*events: Envelope | bytes) -> None:
        for event in events:
            if isinstance(event, bytes):
                publisher.publish(unique_topic, [(rid.encode(), event, [])])
            else:
                publisher.publish(unique_topic, [encode(event)])

    def decisions() -> list[tuple[int, str, str | None]]:
        with Session(container.engine) as s:
            rows = s.exec(
                select(DecisionRow)
                .where(DecisionRow.referral_id == rid)
                .order_by(col(DecisionRow.attempt))
            )
            return [(d.attempt, d.outcome, d.assigned_org) for d in rows]

    def consume_until(n: int) -> None:
        deadline = time.monotonic() + 30
        while len(decisions()) < n and time.monotonic() < deadline:
            consumer.consume_once(timeout=0.5)
        relay.relay_once()

    first_rejection = transition(
        ReferralRejected, rid, rejected_by="RXA01", reason_code=RejectionReason.FAILED_CONTACT
    )
    send(submitted(rid), first_rejection)
    consume_until(2)
    send(first_rejection, b"\x00 not an event")  # a redelivery and a poison record
    send(
        transition(
            ReferralRejected,
            rid,
            holder="RXA02",
            rejected_by="RXA02",
            reason_code=RejectionReason.NOT_AVAILABLE_WITHIN_TIMESCALE,
        )
    )
    consume_until(3)
    for _ in range(5):  # drain whatever is left, so a duplicate would have been applied
        consumer.consume_once(timeout=0.3)
    relay.relay_once()

    assert decisions() == [(1, "routed", "RXA01"), (2, "routed", "RXA02"), (3, "unroutable", None)]
    on_decisions = read(kafka_bootstrap, "routing.decisions.v1", rid, 3)
    assert names(on_decisions) == ["ReferralRouted", "ReferralRouted", "ReferralUnroutable"]
    assert [e.payload().assigned_org for e in on_decisions[:2]] == ["RXA01", "RXA02"]
    on_provider = read(kafka_bootstrap, "provider.rapid-response.v1", rid, 4)
    assert names(on_provider) == [
        "ReferralRouted",
        "ReferralRejected",
        "ReferralRouted",
        "ReferralRejected",
    ], "the rejection delivered twice is forwarded once"
    assert names(read(kafka_bootstrap, "routing.escalations.v1", rid, 1)) == ["ReferralEscalated"]
    dead = KafkaRecordSource(
        kafka_bootstrap, f"it-dlq-{uuid.uuid4().hex[:8]}", topics=[dead_letter_topic(unique_topic)]
    )
    try:
        records: list = []
        wait_for("the poison record on the DLQ", lambda: records.extend(dead.poll(0.5)) or records)
    finally:
        dead.close()
    assert dict(records[0].headers)["dlq_error"].startswith(b"not a CloudEvents")


# ---- the clock worker as a process -----------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Container]:
    """A routing database on the real clock, with a rapid-response policy of seconds."""
    container = bootstrap(Settings(database_url=f"sqlite:///{tmp_path / 'routing.db'}"))
    seed_demo(container.engine)
    admin.put_policy(
        admin.PolicyData(ServiceType.URGENT_COMMUNITY_RESPONSE, Priority.STAT, 6, None, 0.25, True),
        container.uow(),
    )
    yield container
    container.engine.dispose()


def start_clock_worker(container: Container, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ROUTING_DATABASE_URL": str(container.engine.url),
        "ROUTING_HEARTBEAT_DIR": str(tmp_path / "heartbeats"),
        "ROUTING_CLOCK_MAX_SLEEP_SECONDS": "0.2",
    }
    heartbeat = tmp_path / "heartbeats" / "routing-clock.alive"
    heartbeat.unlink(missing_ok=True)
    log = (tmp_path / "clock.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "routing", "clock"],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    wait_for("the clock worker's first loop", heartbeat.exists)
    return worker


def clock_of(container: Container, rid: str) -> ClockRow:
    with Session(container.engine) as s:
        found = s.get(ClockRow, f"{rid}:acceptance:1")
        assert found is not None
        return found


def deliver_now(container: Container, event: Envelope) -> None:
    with Session(container.engine) as s:
        consume(container, s, event)  # the live container's clock is the real one
        s.commit()


def test_clocks_fire_across_a_killed_and_restarted_clock_worker(
    kafka_bootstrap, publisher, live, tmp_path
) -> None:
    before, during = f"it-{uuid.uuid4()}", f"it-{uuid.uuid4()}"
    worker = start_clock_worker(live, tmp_path)
    try:
        deliver_now(live, submitted(before, priority=Priority.STAT, at=datetime.now(UTC)))
        wait_for("the warning of the first clock", lambda: clock_of(live, before).warned_at)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert clock_of(live, before).breached_at is None, "killed before its deadline"

    deliver_now(live, submitted(during, priority=Priority.STAT, at=datetime.now(UTC)))
    latest = max(clock_of(live, rid).deadline_at for rid in (before, during))
    wait_for("both deadlines to pass while no worker runs", lambda: datetime.now(UTC) > latest)
    assert clock_of(live, during).breached_at is None

    worker = start_clock_worker(live, tmp_path)
    try:
        wait_for(
            "both breaches after the restart",
            lambda: all(clock_of(live, rid).breached_at for rid in (before, during)),
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0, "the worker stops cleanly on SIGTERM"
    for rid in (before, during):
        row = clock_of(live, rid)
        assert row.breached_at and row.breached_at >= row.deadline_at, "never early"
    assert clock_of(live, during).warned_at is None, "a warning overtaken by its deadline"

    OutboxRelay(live.engine, publisher).relay_once()
    assert names(read(kafka_bootstrap, "routing.sla.v1", before, 2)) == [
        "SlaWarning",
        "SlaBreached",
    ]
    assert names(read(kafka_bootstrap, "routing.sla.v1", during, 1)) == ["SlaBreached"]
    for_provider = read(kafka_bootstrap, "provider.rapid-response.v1", before, 3)
    assert names(for_provider) == ["ReferralRouted", "SlaWarning", "SlaBreached"]
