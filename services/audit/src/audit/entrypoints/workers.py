"""Worker processes of the audit service.

``python -m audit consumer`` appends every event of every ``*.v1`` topic to the chain
``python -m audit relay``    publishes the outbox, staging a signed checkpoint every interval"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from rx_contracts import ChainCheckpointed, Envelope
from rx_messaging.consumer import PermanentError
from rx_messaging.lease import run_as_sole
from rx_messaging.records import Record
from rx_messaging.runner import run_consumer, run_relay, serve_worker_ops
from rx_messaging.worker import install_stop_signals
from sqlmodel import Session

from ..bootstrap import bootstrap
from ..config import get_settings
from ..domain.errors import MalformedEvent
from ..service_layer import handlers
from ..service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

WRITER_ROLE = "audit-chain-writer"
"""The lease the appending consumer holds (``rx_messaging.lease``)."""


def record_event(session: Session, envelope: Envelope, record: Record) -> None:
    """Inbox handler: append the event, whatever its type, in the consumer's transaction. The
    inbox drops redeliveries; one event on two topics (a routing decision) has one id and is
    recorded once. An event that cannot be recorded faithfully goes to the dead-letter topic."""
    try:
        handlers.record_event(envelope, record, UnitOfWork.joining(session))
    except MalformedEvent as exc:
        raise PermanentError(str(exc)) from exc


class CheckpointTimer:
    """Stages a checkpoint at most every ``interval`` seconds; ``tick`` from a worker loop."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        topic: str,
        interval: float,
        sign: Callable[[ChainCheckpointed], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uow, self.topic, self.interval, self.clock = uow, topic, interval, clock
        self.sign = sign
        self._next = 0.0

    def tick(self) -> bool:
        """True when a checkpoint was staged now."""
        if self.clock() < self._next:
            return False
        self._next = self.clock() + self.interval
        staged = handlers.stage_checkpoint(self.topic, self.uow(), self.sign)
        if staged is not None:
            log.info("checkpoint staged at sequence %d", staged.sequence)
        return staged is not None


def consumer() -> None:
    """The chain has one writer: on PostgreSQL the consumer holding the writer lease appends,
    and any other waits as its standby (outside the consumer group) until the lease is free."""
    settings = get_settings()
    container = bootstrap(settings)
    stop = install_stop_signals()
    serve_worker_ops("audit-consumer", container.engine, settings.kafka_bootstrap_servers)

    def append(until: threading.Event) -> None:
        run_consumer(
            "audit",
            container.engine,
            settings.kafka_bootstrap_servers,
            settings.consumer_group,
            record_event,
            settings.heartbeat_dir,
            pattern=settings.topic_pattern,
            auth=settings.kafka_auth,
            stop=until,
            serve=False,
            pace=settings.consumer_gather_ms / 1000,
        )

    run_as_sole(
        WRITER_ROLE,
        container.engine,
        append,
        stop,
        heartbeat=settings.heartbeat_dir / "audit-consumer.alive",
    )


def relay() -> None:
    settings = get_settings()
    container = bootstrap(settings)
    # No key, no relay: an unsigned checkpoint would be reported as forged.
    sign = container.checkpoint_keys.signer()
    timer = CheckpointTimer(
        container.uow, settings.checkpoint_topic, settings.checkpoint_interval_s, sign
    )
    run_relay(
        "audit",
        container.engine,
        settings.kafka_bootstrap_servers,
        settings.heartbeat_dir,
        auth=settings.kafka_auth,
        before_each=timer.tick,
    )
