"""Delivery to a real receiver (an HTTP server on loopback) that misbehaves: down, answering
500, hanging past the timeout, answering slowly. Nothing is lost, numbers arrive contiguous,
a referral's events in order, and a second subscription is not held up by the first."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from devstack.polling import wait_for
from devstack.receiver import Mode, Receiver
from notify.adapters.sender import Outcome, Sender
from notify.bootstrap import Container, bootstrap
from notify.config import Settings
from notify.domain.caller import Caller
from notify.domain.endpoint import Endpoint, EndpointPolicy
from notify.domain.subscription import Channel, Content, RetryPolicy, Status
from notify.domain.topics import Topic
from notify.entrypoints.dispatcher import Dispatcher
from notify.entrypoints.workers import dispatcher, pass_wakeups
from notify.service_layer import handlers
from notify.service_layer.delivery import Deliveries
from notify.service_layer.handlers import CreateSubscription
from notify.service_layer.ingest import ingest
from notify.service_layer.unit_of_work import DELIVERY
from rx_contracts import Envelope, Role
from rx_messaging.wake import commit_signal
from sqlmodel import Session

from .journeys import GP, TEAM, Journey


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("RX_ENV", "development")
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'notify.db'}",
        allow_loopback=True,
        retry_first_seconds=0.05,
        retry_max_seconds=0.3,
        delivery_timeout_seconds=1.0,
        connect_timeout_seconds=1.0,
        idle_poll_seconds=0.2,
        worker_name="test-worker",
    )


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    built = bootstrap(settings)
    yield built
    built.engine.dispose()


class Running:
    """A delivery loop on its own thread, as the worker runs it."""

    def __init__(self, loop: Dispatcher) -> None:
        self.loop = loop
        self.thread = threading.Thread(target=lambda: asyncio.run(loop.run()), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.loop.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def start(settings: Settings, container: Container) -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def run(loop: Dispatcher | None = None) -> Running:
        started = Running(loop or dispatcher(settings, container))
        running.append(started)
        return started

    yield run
    for started in running:
        started.stop()


def subscribe(
    container: Container,
    org: str,
    topic: Topic,
    url: str,
    channel: Channel = Channel.WEBHOOK,
    **extra: object,
) -> tuple[str, str]:
    caller = Caller(org, frozenset({Role.PROVIDER}))
    cmd = CreateSubscription(
        channel=channel,
        topic=topic,
        endpoint=url,
        content=Content.FULL_RESOURCE,
        **extra,  # type: ignore[arg-type]
    )
    created = handlers.create_subscription(cmd, caller, container.uow(), container.checks)
    return created.id, created.secret


def feed(container: Container, loop: Dispatcher | None, *envelopes: Envelope) -> None:
    with Session(container.engine) as session:
        for envelope in envelopes:
            ingest(session, envelope)
        session.commit()
    if loop is not None:
        loop.wake()


def numbers(receiver: Receiver) -> list[int]:
    return [d.json()["eventnumber"] for d in receiver.unique(lambda d: d.headers["webhook-id"])]


def test_nothing_is_lost_through_an_outage_and_the_other_subscription_goes_on(
    container: Container, start: Callable[..., Running]
) -> None:
    flaky, healthy = Receiver().start(), Receiver().start()
    flaky_id, flaky_secret = subscribe(container, GP, Topic.SENT, flaky.url)
    healthy_id, healthy_secret = subscribe(container, GP, Topic.SENT, healthy.url)
    worker = start()
    journeys = [Journey() for _ in range(3)]

    flaky.stop()  # down: connections refused
    feed(container, worker.loop, *(j.submitted() for j in journeys))
    feed(container, worker.loop, *(j.routed() for j in journeys))
    wait_for("the healthy endpoint", lambda: len(healthy.received()) == 6, timeout=60)
    assert flaky.received() == []  # the healthy one did not wait for the dead one

    flaky.start()
    flaky.set(Mode.ERROR)
    feed(container, worker.loop, *(j.accepted() for j in journeys))
    wait_for("attempts answered 500", lambda: flaky.attempts >= 3, timeout=60)
    flaky.set(Mode.HANG)
    feed(container, worker.loop, *(j.started() for j in journeys))
    wait_for("attempts that time out", lambda: flaky.attempts >= 5, timeout=60)
    flaky.set(Mode.SLOW)
    feed(container, worker.loop, *(j.completed() for j in journeys))

    total = 3 * 5
    wait_for("every event", lambda: len(set(numbers(flaky))) == total, timeout=60)
    wait_for("every event", lambda: len(healthy.received()) == total, timeout=60)
    assert numbers(flaky) == list(range(1, total + 1)), "contiguous, in number order"
    assert [d.json()["eventnumber"] for d in healthy.received()] == list(range(1, total + 1))
    for j in journeys:
        steps = [
            d.json()["event"]
            for d in flaky.unique(lambda d: d.headers["webhook-id"])
            if d.json()["subject"] == j.id
        ]
        assert steps == ["submitted", "routed", "accepted", "started", "completed"]
    assert flaky.verified(flaky_secret) and healthy.verified(healthy_secret)
    assert not flaky.verified(healthy_secret)
    # A repeated delivery carries the same message id, event id and number.
    by_id: dict[str, set[tuple[str, int]]] = {}
    for d in flaky.received():
        by_id.setdefault(d.headers["webhook-id"], set()).add(
            (d.json()["id"], d.json()["eventnumber"])
        )
    assert all(len(v) == 1 for v in by_id.values())

    def acknowledged(sid: str) -> int:
        with container.uow() as uow:
            return uow.subscriptions.get(sid).delivered_through  # type: ignore[union-attr]

    # The receiver answered before the worker recorded it: wait for the record.
    wait_for("the acknowledgements", lambda: acknowledged(flaky_id) == total, timeout=60)
    with container.uow() as uow:
        assert uow.subscriptions.get(flaky_id).last_error  # type: ignore[union-attr]
        assert uow.subscriptions.get(healthy_id).failures == 0  # type: ignore[union-attr]
    flaky.stop()
    healthy.stop()


def test_a_subscription_turns_error_after_the_retry_period_and_resumes_on_resend(
    settings: Settings, container: Container, start: Callable[..., Running]
) -> None:
    receiver = Receiver().start()
    receiver.set(Mode.ERROR)
    sid, _ = subscribe(container, GP, Topic.SENT, receiver.url)
    deliveries = Deliveries(
        container.uow,
        "test-worker",
        timedelta(seconds=30),
        RetryPolicy(timedelta(seconds=1), 0.05, 0.2),
    )
    loop = Dispatcher(
        deliveries,
        Sender(container.checks.policy),
        dispatcher(settings, container).bases,
        max_in_flight=4,
        idle_poll=0.2,
        timeout=1.0,
    )
    worker = start(loop)
    j = Journey()
    feed(container, worker.loop, j.submitted(), j.routed())

    def status() -> Status:
        with container.uow() as uow:
            return uow.subscriptions.get(sid).status  # type: ignore[union-attr]

    wait_for("the subscription in error", lambda: status() is Status.ERROR, timeout=60)
    feed(container, worker.loop, j.accepted())  # still numbered: nothing dropped
    attempts = receiver.attempts
    time.sleep(0.5)
    assert receiver.attempts == attempts, "a subscription in error is not tried"
    receiver.set(Mode.OK)
    caller = Caller(GP, frozenset({Role.PROVIDER}))
    handlers.resend(sid, caller, 1, container.uow())
    worker.loop.wake()
    wait_for("the resent events", lambda: len(receiver.received()) == 3, timeout=60)
    assert numbers(receiver) == [1, 2, 3]
    assert status() is Status.ACTIVE
    receiver.stop()


def test_an_idle_worker_acts_on_another_process_s_resend_at_once(
    settings: Settings, container: Container, start: Callable[..., Running]
) -> None:
    """The API's commit wakes an idle worker: no look at the database every second, and a
    resend is not left waiting for the next look (30 s here)."""
    receiver = Receiver().start()
    sid, _ = subscribe(container, GP, Topic.SENT, receiver.url)
    signal = commit_signal(container.engine, DELIVERY)
    assert signal.wakes, "SQLite on Linux: commits wake the worker"
    loop = dispatcher(settings.model_copy(update={"idle_poll_seconds": 30.0}), container, signal)
    assert loop.idle_poll == 30.0
    worker = start(loop)
    stop = threading.Event()
    passing = threading.Thread(target=pass_wakeups, args=(signal, loop.wake, stop), daemon=True)
    passing.start()
    try:
        j = Journey()
        feed(container, worker.loop, j.submitted(), j.routed())
        wait_for("the first deliveries", lambda: len(receiver.received()) == 2, timeout=30)
        time.sleep(0.3)  # the loop is asleep now, until its next look in 30 s
        handlers.resend(sid, Caller(GP, frozenset({Role.PROVIDER})), 1, container.uow())
        wait_for("the resent events", lambda: len(receiver.received()) == 4, timeout=10)
        assert numbers(receiver) == [1, 2]
    finally:
        stop.set()
        signal.interrupt()
        passing.join(timeout=5)
        signal.close()
        receiver.stop()
    assert not passing.is_alive()


def test_both_secrets_sign_during_a_rotation_overlap(
    container: Container, start: Callable[..., Running]
) -> None:
    receiver = Receiver().start()
    sid, old = subscribe(container, GP, Topic.SENT, receiver.url)
    caller = Caller(GP, frozenset({Role.PROVIDER}))
    new = handlers.rotate_secret(sid, caller, timedelta(hours=1), container.uow()).secret
    worker = start()
    feed(container, worker.loop, Journey().submitted())
    wait_for("the delivery", lambda: len(receiver.received()) == 1, timeout=60)
    assert len(receiver.received()[0].headers["webhook-signature"].split(" ")) == 2
    assert receiver.verified(old) and receiver.verified(new)
    receiver.stop()


def test_a_fhir_subscription_shakes_hands_then_gets_history_bundles(
    container: Container, start: Callable[..., Running]
) -> None:
    receiver = Receiver().start()
    sid, secret = subscribe(container, TEAM, Topic.OFFERED, receiver.url, Channel.FHIR)
    worker = start()
    j = Journey()
    feed(container, worker.loop, j.submitted(), j.routed(TEAM), j.accepted())
    wait_for("handshake and 2 events", lambda: len(receiver.received()) == 3, timeout=60)
    bundles = [d.json() for d in receiver.received()]
    kinds = []
    for bundle in bundles:
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "history"
        status = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
        kinds.append(status["type"]["valueCode"])
        if status["type"]["valueCode"] == "event-notification":
            [event] = [
                p
                for p in bundle["entry"][0]["resource"]["parameter"]
                if p["name"] == "notification-event"
            ]
            assert event["part"][0]["valueString"] in ("1", "2")
    assert kinds == ["handshake", "event-notification", "event-notification"]
    assert receiver.received()[0].headers["content-type"] == "application/fhir+json"
    assert receiver.verified(secret)
    with container.uow() as uow:
        assert uow.subscriptions.get(sid).status is Status.ACTIVE  # type: ignore[union-attr]
    receiver.stop()


def test_heartbeats_fall_due_when_nothing_else_was_sent(container: Container) -> None:
    sid, _ = subscribe(
        container,
        TEAM,
        Topic.OFFERED,
        "http://127.0.0.1:9/hook",
        Channel.FHIR,
        heartbeat_seconds=60,
    )
    deliveries = Deliveries(
        container.uow, "w", timedelta(seconds=30), RetryPolicy(timedelta(hours=24), 1, 60)
    )
    now = datetime.now(UTC)
    [handshake] = deliveries.claim(now, 10, set())
    assert handshake.kind.value == "handshake"
    deliveries.acknowledge([handshake], now)
    assert deliveries.claim(now, 10, set()) == []  # nothing due until the period passed
    later = now + timedelta(seconds=61)
    [heartbeat] = deliveries.claim(later, 10, set())
    assert heartbeat.subscription.id == sid and heartbeat.kind.value == "heartbeat"


def test_the_connection_goes_to_the_checked_address_never_to_a_refused_one() -> None:
    """The name is resolved by a stub (nothing resolves or connects outside this machine);
    the request reaches the address checked, carrying the name as Host."""
    receiver = Receiver().start()
    names = {"ehr.test": ["127.0.0.1"], "rebound.test": ["10.9.8.7"]}
    sender = Sender(EndpointPolicy(allow_loopback=True), lambda host, port: names[host])
    port = receiver.port

    async def go() -> tuple[Outcome, Outcome]:
        ok = await sender.send(
            Endpoint(f"http://ehr.test:{port}/hook", "http", "ehr.test", port), b"{}", {}, 2
        )
        refused = await sender.send(
            Endpoint(f"https://rebound.test:{port}/hook", "https", "rebound.test", port),
            b"{}",
            {},
            2,
        )
        await sender.close()
        return ok, refused

    ok, refused = asyncio.run(go())
    assert ok.ok
    assert receiver.received()[0].headers["host"] == f"ehr.test:{port}"
    assert not refused.ok and "10.9.8.7 is private" in (refused.error or "")
    assert len(receiver.received()) == 1
    receiver.stop()
