"""Worker process mains shared by every service: an outbox relay, an inbox consumer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import Engine

from .consumer import Handler, InboxConsumer
from .kafka import KafkaPublisher, KafkaRecordSource
from .relay import OutboxRelay
from .worker import Backoff, install_stop_signals, run_loop

T = TypeVar("T")

log = logging.getLogger(__name__)


def run_relay(service: str, engine: Engine, bootstrap_servers: str, heartbeat_dir: Path) -> None:
    """Publish the service's outbox until SIGTERM/SIGINT. Survives the broker being down."""
    stop = install_stop_signals()
    name = f"{service}-relay"
    publisher = _connect(lambda: KafkaPublisher(bootstrap_servers, client_id=name), stop, name)
    if publisher is None:
        return
    relay = OutboxRelay(engine, publisher)
    try:
        run_loop(
            name, lambda: relay.relay_once() > 0, stop, heartbeat=heartbeat_dir / f"{name}.alive"
        )
    finally:
        publisher.close()


def run_consumer(
    service: str,
    engine: Engine,
    bootstrap_servers: str,
    group_id: str,
    handler: Handler,
    heartbeat_dir: Path,
    *,
    topics: list[str] | None = None,
    pattern: str | None = None,
) -> None:
    """Consume ``topics`` (or ``pattern``) as ``group_id`` until SIGTERM/SIGINT."""
    stop = install_stop_signals()
    name = f"{service}-consumer"
    source = _connect(
        lambda: KafkaRecordSource(
            bootstrap_servers, group_id, topics=topics or [], pattern=pattern, client_id=name
        ),
        stop,
        name,
    )
    dlq = _connect(lambda: KafkaPublisher(bootstrap_servers, client_id=f"{name}-dlq"), stop, name)
    if source is None or dlq is None:
        return
    consumer = InboxConsumer(group_id, source, engine, handler, dlq)
    try:
        run_loop(
            name,
            lambda: consumer.step(timeout=0.5),
            stop,
            idle_sleep=0,  # poll() itself waits for records
            heartbeat=heartbeat_dir / f"{name}.alive",
        )
    finally:
        source.close()
        dlq.close()


def _connect(factory: Callable[[], T], stop: threading.Event, what: str) -> T | None:
    """Build a Kafka client, retrying while the broker is unreachable (it may start later).
    None if asked to stop first."""
    backoff = Backoff()
    while not stop.is_set():
        try:
            return factory()
        except Exception as exc:
            delay = backoff.failed()
            log.warning("%s: cannot reach Kafka (%s); retrying in %.1fs", what, exc, delay)
            stop.wait(delay)
    return None
