"""``python -m audit consumer``: append every event of every ``*.v1`` topic to the chain."""

from __future__ import annotations

from rx_contracts import Envelope
from rx_messaging.records import Record
from rx_messaging.runner import run_consumer
from sqlmodel import Session

from . import chain
from .bootstrap import bootstrap
from .config import get_settings


def handle_any_event(session: Session, envelope: Envelope, record: Record) -> None:
    """The same event on two topics (a routing decision) has one id: the inbox keeps the
    first, so it is recorded once."""
    chain.append(session, envelope, record)


def consumer() -> None:
    settings = get_settings()
    run_consumer(
        "audit",
        bootstrap(settings).engine,
        settings.kafka_bootstrap_servers,
        settings.consumer_group,
        handle_any_event,
        settings.heartbeat_dir,
        pattern=settings.topic_pattern,
        auth=settings.kafka_auth,
    )
