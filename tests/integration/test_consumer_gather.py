"""A paced consumer: records arriving before its next cycle is due are applied together, on a
real broker; a record after a quiet spell is applied at once, and a stop ends the wait."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from devstack.polling import wait_for
from rx_contracts import encode, examples, wrap
from rx_messaging.database import make_engine
from rx_messaging.kafka import KafkaPublisher
from rx_messaging.runner import run_consumer
from rx_messaging.tables import InboxMessage
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

pytestmark = pytest.mark.kafka


def _paced_consumer(
    kafka_bootstrap: str, unique_topic: str, tmp_path: Path, pace: float
) -> tuple[threading.Thread, threading.Event, list[str], list[int], Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gather.db'}")
    SQLModel.metadata.create_all(engine, tables=[InboxMessage.__table__])  # type: ignore[attr-defined]
    applied: list[str] = []
    batches: list[int] = []
    stop = threading.Event()
    consumer = threading.Thread(
        target=run_consumer,
        args=(
            "gather",
            engine,
            kafka_bootstrap,
            f"it-gather-{uuid.uuid4().hex[:8]}",
            lambda session, envelope, record: applied.append(envelope.id),
            tmp_path,
        ),
        kwargs={
            "topics": [unique_topic],
            "stop": stop,
            "serve": False,
            "pace": pace,
            "after_batch": lambda: batches.append(len(applied)),
        },
        daemon=True,
    )
    consumer.start()
    return consumer, stop, applied, batches, engine


def test_records_arriving_during_the_wait_are_applied_in_one_or_two_batches(
    kafka_bootstrap: str, unique_topic: str, tmp_path: Path
) -> None:
    consumer, stop, applied, batches, engine = _paced_consumer(
        kafka_bootstrap, unique_topic, tmp_path, pace=1.0
    )
    publisher = KafkaPublisher(kafka_bootstrap, client_id="it-gather")

    def send(n: int) -> None:
        envelope = wrap(examples.referral_submitted("r-gather"), source="/tests")
        publisher.publish(unique_topic, [encode(envelope)])

    try:
        send(0)
        wait_for("the first record applied", lambda: len(applied) == 1, timeout=60)
        first = len(batches)
        for n in range(1, 11):  # one at a time, as a relay sends them at low rates
            send(n)
            time.sleep(0.02)
        wait_for("every record applied", lambda: len(applied) == 11, timeout=30)
    finally:
        stop.set()
        consumer.join(timeout=15)
        publisher.close()
        engine.dispose()
    assert not consumer.is_alive()
    assert len(batches) - first <= 2, f"ten records in {len(batches) - first} batches"


def test_a_lone_record_is_applied_at_once_and_a_stop_ends_the_pacing_wait(
    kafka_bootstrap: str, unique_topic: str, tmp_path: Path
) -> None:
    """Paced by an hour: the first record after the idle start is applied at once; the next
    waits for the pacing, and a stop request then ends the consumer."""
    consumer, stop, applied, _batches, engine = _paced_consumer(
        kafka_bootstrap, unique_topic, tmp_path, pace=3600
    )
    publisher = KafkaPublisher(kafka_bootstrap, client_id="it-pace")
    envelope = wrap(examples.referral_submitted("r-pace"), source="/tests")
    try:
        publisher.publish(unique_topic, [encode(envelope)])
        wait_for("the lone record applied", lambda: len(applied) == 1, timeout=60)
        second = wrap(examples.referral_submitted("r-pace-2"), source="/tests")
        publisher.publish(unique_topic, [encode(second)])
        time.sleep(1)  # it has arrived; the consumer waits for its pacing
        assert len(applied) == 1
    finally:
        stop.set()
        consumer.join(timeout=15)
        publisher.close()
        engine.dispose()
    assert not consumer.is_alive()
