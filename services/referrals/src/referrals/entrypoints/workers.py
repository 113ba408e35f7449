"""Worker processes of the referrals service.

``python -m referrals relay``    publishes the outbox to ``referrals.events.v1``
``python -m referrals consumer`` records routing decisions from ``routing.decisions.v1`` and
                                re-routes on acceptance breaches from ``routing.sla.v1``"""

from __future__ import annotations

from rx_contracts import Envelope
from rx_contracts.topics import ROUTING_DECISIONS, ROUTING_SLA
from rx_messaging.consumer import PermanentError
from rx_messaging.records import Record
from rx_messaging.runner import run_consumer, run_relay
from sqlmodel import Session

from ..bootstrap import bootstrap
from ..config import get_settings
from ..domain.errors import IllegalTransition, ReferralNotFound
from ..service_layer import handlers
from ..service_layer.unit_of_work import UnitOfWork


def handle_routing_event(session: Session, envelope: Envelope, _record: Record) -> None:
    """Inbox handler for both routing topics: decisions, and clock breaches that call for an
    automatic re-route."""
    try:
        payload = envelope.payload()  # validated once for both handlers
        uow = UnitOfWork.joining(session, envelope.correlationid)
        handlers.apply_routing_decision(envelope, uow, payload)
        handlers.apply_sla_breach(envelope, uow, payload=payload)
    except (ReferralNotFound, IllegalTransition) as exc:
        raise PermanentError(str(exc)) from exc


def relay() -> None:
    settings = get_settings()
    container = bootstrap(settings)
    run_relay(
        "referrals",
        container.engine,
        settings.kafka_bootstrap_servers,
        settings.heartbeat_dir,
        auth=settings.kafka_auth,
        pace=settings.relay_pace_ms / 1000,
    )


def consumer() -> None:
    settings = get_settings()
    container = bootstrap(settings)
    run_consumer(
        "referrals",
        container.engine,
        settings.kafka_bootstrap_servers,
        settings.consumer_group,
        handle_routing_event,
        settings.heartbeat_dir,
        topics=[ROUTING_DECISIONS, ROUTING_SLA],
        auth=settings.kafka_auth,
        pace=settings.consumer_pace_ms / 1000,
    )
