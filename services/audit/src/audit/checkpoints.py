"""Checkpoints: the chain head published to ``audit.checkpoints.v1``, outside the database.

The relay process stages one through the service's outbox every ``checkpoint_interval_s``
when events (not checkpoints) were appended since the last; verification reads them back with
a fresh consumer, so entries deleted from the tail of the database are noticed even when what
is left is a self-consistent chain."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from rx_config.kafka_auth import KafkaAuth
from rx_contracts import ChainCheckpointed, EnvelopeError, decode, wrap
from rx_messaging.outbox import add_to_outbox
from rx_messaging.runner import reachable
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .config import Settings
from .tables import HEAD

log = logging.getLogger(__name__)

SOURCE = "/services/audit"


class CheckpointsUnavailable(RuntimeError):
    """The checkpoint topic could not be read, so truncation cannot be ruled out."""


@dataclass(frozen=True)
class Checkpoint:
    """A published chain head, as read back from the topic."""

    sequence: int
    hash: str
    checkpointed_at: datetime
    offset: int


def stage_checkpoint(
    session: Session, topic: str, now: datetime | None = None
) -> ChainCheckpointed | None:
    """Put the current head in the outbox if events were appended since the last checkpoint;
    the caller commits. Checkpoints appended to the chain (ours or another audit database's
    on a shared broker) do not count, or checkpoints would beget checkpoints forever."""
    query = select(
        HEAD.c.chain_id,
        HEAD.c.sequence,
        HEAD.c.hash,
        HEAD.c.event_sequence,
        HEAD.c.checkpoint_sequence,
    ).where(HEAD.c.id == 1)
    head = session.execute(query.with_for_update()).first()
    if head is None or head.event_sequence <= head.checkpoint_sequence:
        return None
    checkpoint = ChainCheckpointed(
        chain_id=head.chain_id,
        sequence=head.sequence,
        hash=head.hash,
        checkpointed_at=now or datetime.now(UTC),
    )
    add_to_outbox(session, wrap(checkpoint, source=SOURCE), [topic])
    session.execute(update(HEAD).where(HEAD.c.id == 1).values(checkpoint_sequence=head.sequence))
    return checkpoint


class CheckpointTimer:
    """Stages a checkpoint at most every ``interval`` seconds; ``tick`` from a worker loop."""

    def __init__(
        self,
        engine: Engine,
        topic: str,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.topic, self.interval, self.clock = engine, topic, interval, clock
        self._next = 0.0

    def tick(self) -> bool:
        """True when a checkpoint was staged now."""
        if self.clock() < self._next:
            return False
        self._next = self.clock() + self.interval
        with Session(self.engine) as session:
            staged = stage_checkpoint(session, self.topic)
            session.commit()
        if staged is not None:
            log.info("checkpoint staged at sequence %d", staged.sequence)
        return staged is not None


def read_checkpoints(
    bootstrap_servers: str,
    topic: str,
    chain_id: str,
    timeout: float = 20,
    auth: KafkaAuth | None = None,
) -> list[Checkpoint]:
    """Every checkpoint of chain ``chain_id`` on ``topic``, oldest first, read from the start
    of each partition to its current end by a consumer that belongs to no group."""
    if not any(reachable(server) for server in bootstrap_servers.split(",")):
        raise CheckpointsUnavailable(f"no Kafka broker answers at {bootstrap_servers}")
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","),
        group_id=None,
        enable_auto_commit=False,
        client_id="audit-verify",
        request_timeout_ms=int(timeout * 1000) + 1000,
        **(auth or KafkaAuth()).client_config(),
    )
    try:
        return _read_all(consumer, topic, chain_id, time.monotonic() + timeout)
    finally:
        consumer.close()


def _read_all(
    consumer: KafkaConsumer, topic: str, chain_id: str, deadline: float
) -> list[Checkpoint]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise CheckpointsUnavailable(f"the broker has no topic {topic}")
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    end = consumer.end_offsets(assigned)
    found: list[Checkpoint] = []
    while any(consumer.position(tp) < end[tp] for tp in assigned):
        if time.monotonic() > deadline:
            raise CheckpointsUnavailable(f"reading {topic} to its end took too long")
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                if record.key != chain_id.encode():
                    continue  # another audit database's checkpoints on a shared broker
                checkpoint = _parse(record, chain_id)
                if checkpoint is not None:
                    found.append(checkpoint)
    return sorted(found, key=lambda c: (c.sequence, c.offset))


def _parse(record: object, chain_id: str) -> Checkpoint | None:
    try:
        envelope = decode(record.key, record.value, list(record.headers or []))  # type: ignore[attr-defined]
        payload = envelope.payload()
    except EnvelopeError as exc:
        log.warning("skipping an unreadable record on the checkpoint topic: %s", exc)
        return None
    if not isinstance(payload, ChainCheckpointed) or payload.chain_id != chain_id:
        return None
    return Checkpoint(
        payload.sequence,
        payload.hash,
        payload.checkpointed_at,
        record.offset,  # type: ignore[attr-defined]
    )


def checkpoint_reader(settings: Settings) -> Callable[[str], list[Checkpoint]]:
    """Reads a chain's checkpoints back from Kafka as the audit service (API and command)."""
    return lambda chain_id: read_checkpoints(
        settings.kafka_bootstrap_servers,
        settings.checkpoint_topic,
        chain_id,
        auth=settings.kafka_auth,
    )
