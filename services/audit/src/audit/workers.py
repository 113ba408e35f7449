"""Worker processes of the audit service.

``python -m audit consumer`` appends every event of every ``*.v1`` topic to the chain
``python -m audit relay``    publishes the outbox, staging a checkpoint every interval"""

from __future__ import annotations

from rx_contracts import Envelope
from rx_messaging.records import Record
from rx_messaging.runner import run_consumer, run_relay
from sqlmodel import Session

from . import chain
from .bootstrap import bootstrap
from .checkpoints import CheckpointTimer
from .config import get_settings


def record_event(session: Session, envelope: Envelope, record: Record) -> None:
    """Inbox handler: append the event, whatever its type. The inbox drops redeliveries; one
    event on two topics (a routing decision) has one id and is recorded once."""
    chain.append(session, envelope, record)


def consumer() -> None:
    settings = get_settings()
    run_consumer(
        "audit",
        bootstrap(settings).engine,
        settings.kafka_bootstrap_servers,
        settings.consumer_group,
        record_event,
        settings.heartbeat_dir,
        pattern=settings.topic_pattern,
        auth=settings.kafka_auth,
    )


def relay() -> None:
    settings = get_settings()
    engine = bootstrap(settings).engine
    timer = CheckpointTimer(engine, settings.checkpoint_topic, settings.checkpoint_interval_s)
    run_relay(
        "audit",
        engine,
        settings.kafka_bootstrap_servers,
        settings.heartbeat_dir,
        auth=settings.kafka_auth,
        before_each=timer.tick,
    )
