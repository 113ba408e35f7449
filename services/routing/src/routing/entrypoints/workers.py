"""Worker processes of the routing service.

``python -m routing consumer`` routes referrals from ``referrals.events.v1``
``python -m routing relay``    publishes decisions to ``routing.decisions.v1`` and provider topics
``python -m routing seed``     loads the demo directory and rules (idempotent)"""

from __future__ import annotations

import logging

from rx_contracts import Envelope
from rx_contracts.topics import REFERRAL_EVENTS
from rx_messaging.records import Record
from rx_messaging.runner import run_consumer, run_relay
from sqlmodel import Session

from ..bootstrap import bootstrap
from ..config import get_settings
from ..seed import seed_demo
from ..service_layer.handlers import route_referral_event


def handle_referral_event(session: Session, envelope: Envelope, _record: Record) -> None:
    route_referral_event(session, envelope)


def relay() -> None:
    settings = get_settings()
    run_relay(
        "routing",
        bootstrap(settings).engine,
        settings.kafka_bootstrap_servers,
        settings.heartbeat_dir,
        auth=settings.kafka_auth,
    )


def consumer() -> None:
    settings = get_settings()
    run_consumer(
        "routing",
        bootstrap(settings).engine,
        settings.kafka_bootstrap_servers,
        settings.consumer_group,
        handle_referral_event,
        settings.heartbeat_dir,
        topics=[REFERRAL_EVENTS],
        auth=settings.kafka_auth,
    )


def seed() -> None:
    added = seed_demo(bootstrap(get_settings()).engine)
    logging.getLogger("routing.seed").info("demo directory loaded (%d rows added)", added)
