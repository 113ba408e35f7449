"""Worker processes of the routing service.

``python -m routing consumer`` routes referrals from ``referrals.events.v1``, starts and stops clocks
``python -m routing relay``    publishes the outbox (decisions, forwarded transitions, clock events)
``python -m routing clock``    fires SLA warnings and breaches when they are due"""

from __future__ import annotations

from functools import partial

from rx_contracts import Envelope
from rx_contracts.topics import REFERRAL_EVENTS
from rx_messaging.consumer import PermanentError
from rx_messaging.records import Record
from rx_messaging.runner import run_consumer, run_relay, serve_worker_ops
from rx_messaging.wake import CLOCKS, commit_signal
from rx_messaging.worker import install_stop_signals, run_loop
from sqlmodel import Session

from ..adapters.clock_metrics import add_clock_probe
from ..adapters.clocks import LOOK_EVERY
from ..bootstrap import Container, bootstrap
from ..config import get_settings
from ..domain.errors import CaseNotFound, IllegalTransition
from ..service_layer import handlers
from ..service_layer.unit_of_work import UnitOfWork
from .clock_worker import ClockWorker


def handle_referral_event(
    container: Container, session: Session, envelope: Envelope, _record: Record
) -> None:
    """Inbox handler: the event's effects in the consumer's transaction."""
    try:
        uow = UnitOfWork.joining(session, container.directory, envelope.correlationid)
        handlers.route_referral_event(envelope, uow, container.clock.now())
    except (CaseNotFound, IllegalTransition) as exc:
        raise PermanentError(str(exc)) from exc


def relay() -> None:
    settings = get_settings()
    run_relay(
        "routing",
        bootstrap(settings).engine,
        settings.kafka_bootstrap_servers,
        settings.heartbeat_dir,
        auth=settings.kafka_auth,
        pace=settings.relay_pace_ms / 1000,
    )


def consumer() -> None:
    settings = get_settings()
    container = bootstrap(settings)
    run_consumer(
        "routing",
        container.engine,
        settings.kafka_bootstrap_servers,
        settings.consumer_group,
        partial(handle_referral_event, container),
        settings.heartbeat_dir,
        topics=[REFERRAL_EVENTS],
        auth=settings.kafka_auth,
        pace=settings.consumer_pace_ms / 1000,
    )


def clock() -> None:
    settings = get_settings()
    container = bootstrap(settings)
    # Woken by commits that start or resume a clock due soon; else asleep until the next
    # deadline, looking again at least every LOOK_EVERY.
    signal = commit_signal(container.engine, CLOCKS)
    stop = install_stop_signals(on_stop=signal.interrupt)
    serve_worker_ops("routing-clock", container.engine)
    add_clock_probe(container.engine)
    bound = LOOK_EVERY.total_seconds() if signal.wakes else settings.clock_max_sleep_seconds
    worker = ClockWorker(container.uow, container.clock, bound, settings.clock_batch)

    pause = [0.0]

    def fire() -> bool:
        worker.fire_due()
        pause[0] = worker.seconds_until_next()
        return False  # then the heartbeat, then the wait: sleeps may be long

    try:
        run_loop(
            "routing-clock",
            fire,
            stop,
            idle_sleep=0,
            idle_wait=lambda _: signal.wait(pause[0]),
            heartbeat=settings.heartbeat_dir / "routing-clock.alive",
        )
    finally:
        signal.close()
