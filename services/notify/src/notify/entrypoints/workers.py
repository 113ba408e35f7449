"""Worker processes of the notify service.

``python -m notify worker`` ingests referrals.events.v1, routing.decisions.v1 and routing.sla.v1
                            (numbering events per subscription) and delivers them over HTTPS
``python -m notify relay``  publishes the outbox (subscription events) to notify.subscriptions.v1

The worker's ingestion (the consumer, main thread) and delivery (an asyncio loop, own thread)
share only the database; ingestion wakes delivery when it committed new notifications, so a
notification leaves within milliseconds, and delivery goes on while the broker is away. Other
processes' changes to subscriptions (the API's) wake delivery when they commit; an idle worker
otherwise sleeps until its next scheduled retry, heartbeat or lease expiry, looking at the
database at least every ``LOOK_EVERY`` seconds in case a wake-up was lost."""

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
from rx_messaging.wake import CommitSignal, commit_signal
from rx_messaging.worker import install_stop_signals
from sqlmodel import Session

from ..adapters.render import Bases
from ..adapters.sender import Sender
from ..bootstrap import Container, bootstrap
from ..config import Settings, get_settings
from ..domain.subscription import RetryPolicy
from ..service_layer.delivery import Deliveries
from ..service_layer.ingest import ingest
from ..service_layer.unit_of_work import DELIVERY
from .dispatcher import Dispatcher

log = logging.getLogger(__name__)

TOPICS = [REFERRAL_EVENTS, ROUTING_DECISIONS, ROUTING_SLA]
LOOK_EVERY = 10.0
"""Seconds between an idle worker's looks at the database when commits wake it."""


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

    def handle(self, session: Session, envelope: Envelope, record: Record) -> None:
        """Inbox handler: the event's effects in the consumer's transaction. The record's
        value is the event's data as JSON (CloudEvents' binary mode, which ``decode`` parsed
        it as), stored as it is when the event is kept for later."""
        data_json = record.value.decode() if record is not None and record.value else None
        if ingest(session, envelope, data_json):
            self._numbered = True

    def after_batch(self) -> None:
        if self._numbered:
            self._numbered = False
            self._wake()


def dispatcher(
    settings: Settings, container: Container, signal: CommitSignal | None = None
) -> Dispatcher:
    """The delivery loop as the worker runs it (tests build it the same way). With a
    ``signal`` that wakes on commits, an idle loop looks at most every ``LOOK_EVERY`` seconds
    (or ``idle_poll_seconds``, if longer) instead of every ``idle_poll_seconds``."""
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
        idle_poll=(
            max(settings.idle_poll_seconds, LOOK_EVERY)
            if signal is not None and signal.wakes
            else settings.idle_poll_seconds
        ),
        timeout=settings.delivery_timeout_seconds,
    )


def worker() -> None:
    settings = get_settings()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    container = bootstrap(settings)
    signal = commit_signal(container.engine, DELIVERY)
    stop = install_stop_signals(on_stop=signal.interrupt)
    loop = dispatcher(settings, container, signal)
    ingestion = Ingestion(loop.wake)
    alive = settings.heartbeat_dir / "notify-worker.alive"
    delivery = threading.Thread(
        target=lambda: asyncio.run(loop.run(heartbeat=partial(touch, alive))),
        name="notify-delivery",
    )
    delivery.start()
    threading.Thread(
        target=pass_wakeups, args=(signal, loop.wake, stop), name="notify-wakeups", daemon=True
    ).start()
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
            pace=settings.consumer_pace_ms / 1000,
        )
    finally:
        stop.set()
        signal.interrupt()
        loop.stop()
        delivery.join(timeout=30)
        signal.close()


def pass_wakeups(signal: CommitSignal, wake: Callable[[], None], stop: threading.Event) -> None:
    """Hand the delivery loop every wake-up other processes' commits send (blocks in the
    signal's wait, so an idle worker costs nothing here)."""
    while signal.wakes and not stop.is_set():
        if signal.wait(LOOK_EVERY):
            wake()


def relay() -> None:
    settings = get_settings()
    run_relay(
        "notify",
        bootstrap(settings).engine,
        settings.kafka_bootstrap_servers,
        settings.heartbeat_dir,
        auth=settings.kafka_auth,
    )
