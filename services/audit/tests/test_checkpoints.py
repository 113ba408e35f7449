"""Checkpoints: published when events were appended since the last one, never because of
checkpoints themselves, and read back from the topic for this chain only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from audit.adapters.checkpoint_keys import CheckpointKeys, Signer
from audit.adapters.checkpoint_topic import read_checkpoints
from audit.entrypoints.workers import CheckpointTimer
from audit.service_layer.handlers import stage_checkpoint
from devstack.topics import ensure_topics
from rx_contracts import ChainCheckpointed, Envelope, decode, encode, wrap
from rx_messaging.kafka import KafkaPublisher
from rx_messaging.relay import OutboxRelay
from rx_messaging.tables import OutboxMessage
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from .conftest import record_all, submitted, unit_of_work

TOPIC = "audit.checkpoints.v1"


@pytest.fixture
def sign(checkpoint_keys: CheckpointKeys) -> Signer:
    return checkpoint_keys.sign


def stage(engine: Engine, sign: Signer, topic: str = TOPIC) -> ChainCheckpointed | None:
    return stage_checkpoint(topic, unit_of_work(engine), sign)


def read_head(engine: Engine) -> tuple[str, int, str] | None:
    """(chain id, sequence, hash) of the head row; None for an empty chain."""
    with unit_of_work(engine) as uow:
        head = uow.chain.stored_head()
    return None if head is None else (head.chain_id, head.sequence, head.hash)


def outbox(engine: Engine) -> list[Envelope]:
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    return [decode(r.key, r.value, [(n, v.encode()) for n, v in r.headers]) for r in rows]


def checkpoint_event(chain_id: str, sequence: int, event_id: str) -> Envelope:
    payload = ChainCheckpointed(
        chain_id=chain_id, sequence=sequence, hash="0" * 64, checkpointed_at=datetime.now(UTC)
    )
    return wrap(payload, source="/services/audit", event_id=event_id)


def test_nothing_is_published_for_an_empty_chain(engine: Engine, sign: Signer) -> None:
    assert stage(engine, sign) is None
    assert outbox(engine) == []


def test_the_head_is_published_once_until_more_events_arrive(engine: Engine, sign: Signer) -> None:
    record_all(engine, [submitted(1), submitted(2)])
    chain_id, _, head_hash = read_head(engine) or ("", 0, "")

    first = stage(engine, sign)
    assert first is not None
    assert (first.chain_id, first.sequence, first.hash) == (chain_id, 2, head_hash)
    assert stage(engine, sign) is None, "no new events, no new checkpoint"

    record_all(engine, [submitted(3)])
    second = stage(engine, sign)
    assert second is not None and second.sequence == 3
    [one, two] = outbox(engine)
    assert one.payload() == first and two.payload() == second
    assert one.subject == chain_id, "keyed by the chain"


def test_checkpoints_appended_to_the_chain_do_not_make_another_one_due(
    engine: Engine, sign: Signer
) -> None:
    record_all(engine, [submitted(1)])
    staged = stage(engine, sign)
    assert staged is not None
    # The consumer records our own checkpoint, and another audit database's, from the topic.
    record_all(
        engine,
        [
            checkpoint_event(staged.chain_id, 1, "cp-own"),
            checkpoint_event("another-chain", 9, "cp-other"),
        ],
        topic=TOPIC,
    )
    assert read_head(engine)[1] == 3  # type: ignore[index]

    assert stage(engine, sign) is None, "checkpoints must not beget checkpoints"
    record_all(engine, [submitted(2)])
    later = stage(engine, sign)
    assert later is not None and later.sequence == 4, "the next one covers them"


def test_the_timer_stages_at_most_once_per_interval(engine: Engine, sign: Signer) -> None:
    now = [100.0]
    timer = CheckpointTimer(
        lambda: unit_of_work(engine), TOPIC, interval=10, sign=sign, clock=lambda: now[0]
    )
    record_all(engine, [submitted(1)])
    assert timer.tick() is True
    record_all(engine, [submitted(2)])
    now[0] += 9
    assert timer.tick() is False, "not yet"
    now[0] += 1
    assert timer.tick() is True
    assert [e.payload().sequence for e in outbox(engine)] == [1, 2]  # type: ignore[attr-defined]


@pytest.mark.kafka
def test_read_back_gives_this_chains_checkpoints_in_order(
    engine: Engine, kafka_bootstrap: str, checkpoint_keys: CheckpointKeys
) -> None:
    sign = checkpoint_keys.sign
    topic = f"audit-test-{uuid.uuid4().hex[:12]}.checkpoints.v1"
    ensure_topics(kafka_bootstrap, {topic: 1})
    publisher = KafkaPublisher(kafka_bootstrap, client_id="audit-checkpoint-test")
    try:
        record_all(engine, [submitted(1)])
        stage(engine, sign, topic)
        record_all(engine, [submitted(2), submitted(3)])
        stage(engine, sign, topic)
        assert OutboxRelay(engine, publisher).relay_once() == 2
        other = checkpoint_event("another-chain", 5, "cp-other")
        publisher.publish(topic, [encode(other)])
        chain_id = read_head(engine)[0]  # type: ignore[index]

        found = read_checkpoints(kafka_bootstrap, topic, chain_id, checkpoint_keys.trusted())
    finally:
        publisher.close()

    assert [c.sequence for c in found] == [1, 3]
    assert found[-1].hash == read_head(engine)[2]  # type: ignore[index]
