"""Reading checkpoints back from ``audit.checkpoints.v1``: the chain heads the relay published
outside the database, so verification notices entries deleted from the tail of the database
even when what is left is a self-consistent chain. Each one's signature is checked against
the trusted checkpoint keys: those that do not verify come back as forged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from rx_config.kafka_auth import KafkaAuth
from rx_contracts import ChainCheckpointed, EnvelopeError, decode
from rx_messaging.kafka import client_config
from rx_messaging.runner import reachable

from ..config import Settings
from ..domain.errors import CheckpointsUnavailable
from ..domain.verification import Checkpoint, ForgedCheckpoint
from .checkpoint_keys import TrustedKey, check

Published = Checkpoint | ForgedCheckpoint

log = logging.getLogger(__name__)


def read_checkpoints(
    bootstrap_servers: str,
    topic: str,
    chain_id: str,
    trusted: Mapping[str, TrustedKey],
    timeout: float = 20,
    auth: KafkaAuth | None = None,
) -> list[Published]:
    """Every checkpoint of chain ``chain_id`` on ``topic``, oldest first, read from the start
    of each partition to its current end by a consumer that belongs to no group; genuine if
    signed with one of the ``trusted`` keys, forged otherwise."""
    if not any(reachable(server) for server in bootstrap_servers.split(",")):
        raise CheckpointsUnavailable(f"no Kafka broker answers at {bootstrap_servers}")
    consumer = KafkaConsumer(
        **client_config(bootstrap_servers, "audit-verify", auth),
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=int(timeout * 1000) + 1000,
    )
    try:
        return _read_all(consumer, topic, chain_id, trusted, time.monotonic() + timeout)
    finally:
        consumer.close()


def _read_all(
    consumer: KafkaConsumer,
    topic: str,
    chain_id: str,
    trusted: Mapping[str, TrustedKey],
    deadline: float,
) -> list[Published]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise CheckpointsUnavailable(f"the broker has no topic {topic}")
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    end = consumer.end_offsets(assigned)
    found: list[Published] = []
    while any(consumer.position(tp) < end[tp] for tp in assigned):
        if time.monotonic() > deadline:
            raise CheckpointsUnavailable(f"reading {topic} to its end took too long")
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                if record.key != chain_id.encode():
                    continue  # another audit database's checkpoints on a shared broker
                checkpoint = _parse(record, chain_id, trusted)
                if checkpoint is not None:
                    found.append(checkpoint)
    return sorted(found, key=lambda c: (c.sequence, c.offset))


def _parse(record: object, chain_id: str, trusted: Mapping[str, TrustedKey]) -> Published | None:
    try:
        envelope = decode(record.key, record.value, list(record.headers or []))  # type: ignore[attr-defined]
        payload = envelope.payload()
    except EnvelopeError as exc:
        log.warning("skipping an unreadable record on the checkpoint topic: %s", exc)
        return None
    if not isinstance(payload, ChainCheckpointed) or payload.chain_id != chain_id:
        return None
    offset: int = record.offset  # type: ignore[attr-defined]
    problem, kid = check(payload, trusted)
    if problem is not None:
        return ForgedCheckpoint(
            payload.sequence, payload.hash, payload.checkpointed_at, offset, kid, problem
        )
    return Checkpoint(payload.sequence, payload.hash, payload.checkpointed_at, offset)


def checkpoint_reader(
    settings: Settings, trusted: Callable[[], Mapping[str, TrustedKey]]
) -> Callable[[str], list[Published]]:
    """Reads a chain's checkpoints back from Kafka as the audit service (API and command),
    trusting the keys ``trusted()`` gives at each read."""
    return lambda chain_id: read_checkpoints(
        settings.kafka_bootstrap_servers,
        settings.checkpoint_topic,
        chain_id,
        trusted(),
        auth=settings.kafka_auth,
    )
