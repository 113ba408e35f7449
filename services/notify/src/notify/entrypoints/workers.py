"""Worker processes of the notify service.

``python -m notify worker`` ingests referrals.events.v1, routing.decisions.v1 and routing.sla.v1
                            (numbering events per subscription) and delivers them over HTTPS
``python -m notify relay``  publishes the outbox (subscription events) to notify.subscriptions.v1

The worker's ingestion (the consumer, main thread) and delivery (an asyncio loop, own thread)
share only the database; ingestion wakes delivery when it committed new notifications, so a
notification leaves within milliseconds, and delivery goes on while the broker is away."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

from rx_contracts import Envelope
from rx_contracts.topics import REFERRAL_EVENTS, ROUTING_DECISIONS, ROUTING_SLA
from rx_messaging.records import Record
from rx_messaging.runner import run_consumer, run_relay
from rx_messaging.worker import install_stop_signals
from sqlmodel import Session

from ..adapters.render import Bases
from ..adapters.sender import Sender
from ..bootstrap import Container, bootstrap
from ..config import Settings, get_settings
from ..domain.subscription import RetryPolicy
from ..service_layer.delivery import Deliveries
from ..service_layer.ingest import ingest
from .dispatcher import Dispatcher

log = logging.getLogger(__name__)

TOPICS = [REFERRAL_EVENTS, ROUTING_DECISIONS, ROUTING_SLA]


def touch(path: Path) -> None:
    """The delivery loop's heartbeat file, for container health checks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


class Ingestion:
    """The consumer's handler and its after-batch hook: delivery is woken after a batch that
    numbered notifications, not after every batch (most events are nobody's to hear)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._numbered = False
        """Set by a batch that numbered something; an abandoned or failed batch leaves it set,
        which costs one needless wake-up and never a missed one."""

    def handle(self, session: Session, envelope: Envelope, _record: Record) -> None:
        """Inbox handler: the event's effects in the consumer's transaction."""
        if ingest(session, envelope):
            self._numbered = True

    def after_batch(self) -> None:
        if self._numbered:
            self._numbered = False
            self._wake()


def dispatcher(settings: Settings, container: Container) -> Dispatcher:
    """The delivery loop as the worker runs it (tests build it the same way)."""
    deliveries = Deliveries(
        container.uow,
        owner=settings.worker_name or socket.gethostname(),
        lease=timedelta(seconds=settings.lease_seconds),
        retry=RetryPolicy(
            timedelta(seconds=settings.retry_for_seconds),
            settings.retry_first_seconds,
            settings.retry_max_seconds,
        ),
    )
    sender = Sender(
        container.checks.policy, container.checks.resolver, settings.connect_timeout_seconds
    )
    return Dispatcher(
        deliveries,
        sender,
        Bases(f"{settings.public_url.rstrip('/')}/fhir/R4", settings.referrals_fhir_base),
        max_in_flight=settings.max_in_flight,
        idle_poll=settings.idle_poll_seconds,
        timeout=settings.delivery_timeout_seconds,
    )


def worker() -> None:
    settings = get_settings()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    container = bootstrap(settings)
    stop = install_stop_signals()
    loop = dispatcher(settings, container)
    ingestion = Ingestion(loop.wake)
    alive = settings.heartbeat_dir / "notify-worker.alive"
    delivery = threading.Thread(
        target=lambda: asyncio.run(loop.run(heartbeat=partial(touch, alive))),
        name="notify-delivery",
    )
    delivery.start()
    try:
        run_consumer(
            "notify",
            container.engine,
            settings.kafka_bootstrap_servers,
            settings.consumer_group,
            ingestion.handle,
            settings.heartbeat_dir,
            topics=TOPICS,
            auth=settings.kafka_auth,
            after_batch=ingestion.after_batch,
            stop=stop,
            process="notify-worker",
        )
    finally:
        loop.stop()
        delivery.join(timeout=30)


def relay() -> None:
    settings = get_settings()
    run_relay(
        "notify",
        bootstrap(settings).engine,
        settings.kafka_bootstrap_servers,
        settings.heartbeat_dir,
        auth=settings.kafka_auth,
    )
