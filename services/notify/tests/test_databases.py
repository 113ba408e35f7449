"""The same ingestion and delivery bookkeeping on both engines the service runs on (SQLite
files, PostgreSQL): migrations, gapless numbering, leases and acknowledgements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from notify.adapters import migrate
from notify.bootstrap import Container, bootstrap
from notify.config import Settings
from notify.domain.subscription import RetryPolicy
from notify.domain.topics import Topic
from notify.entrypoints.workers import Ingestion
from notify.service_layer.delivery import Deliveries
from rx_contracts import Envelope, decode, encode
from rx_messaging.records import Record
from sqlmodel import Session

from .journeys import GP, Journey
from .test_ingest import feed, received, stub_resolver, subscribe


@pytest.fixture
def container(database_url: str) -> Iterator[Container]:
    built = bootstrap(Settings(database_url=database_url), resolver=stub_resolver)
    yield built
    built.engine.dispose()


def test_numbers_leases_and_acknowledgements_on_each_engine(container: Container) -> None:
    assert migrate.current(container.engine) == migrate.head()
    first = subscribe(container, GP, Topic.SENT)
    second = subscribe(container, GP, Topic.SENT)
    journeys = [Journey() for _ in range(3)]
    for j in journeys:
        feed(container, j.submitted(), j.routed(), j.accepted())
    for sid in (first, second):
        assert [n for n, _, _ in received(container, sid)] == list(range(1, 10))
    deliveries = Deliveries(
        container.uow, "w", timedelta(seconds=30), RetryPolicy(timedelta(hours=24), 1, 60)
    )
    now = datetime.now(UTC)
    jobs = deliveries.claim(now, 10, set())
    assert sorted(job.subscription.id for job in jobs) == sorted([first, second])
    assert deliveries.claim(now, 10, set()) == []  # leased
    assert [e.number for e in jobs[0].events] == list(range(1, 10))
    deliveries.acknowledge(jobs[:1], now)
    assert deliveries.failed(jobs[1], now, "HTTP 500", acknowledged=4) is False
    with container.uow() as uow:
        done = uow.subscriptions.get(jobs[0].subscription.id)
        partly = uow.subscriptions.get(jobs[1].subscription.id)
        assert done is not None and done.backlog == 0
        assert partly is not None and partly.delivered_through == 4 and partly.failures == 1


def test_events_that_came_before_any_subscription_are_placed_on_each_engine(
    container: Container,
) -> None:
    """Stored unplaced while nobody could hear of them, placed (and numbered for nobody)
    when the referral's next event comes for a subscriber."""
    j, later = Journey(), Journey()
    first, second = later.submitted(), later.routed()
    feed(container, j.submitted(), j.routed(), second)  # second waits for its predecessor
    sent = subscribe(container, GP, Topic.SENT)
    feed(container, j.accepted(), first)
    assert received(container, sent) == [
        (1, "accepted", j.id),
        (2, "submitted", later.id),
        (3, "routed", later.id),
    ]


def test_an_event_kept_as_it_came_shows_its_payload_on_each_engine(container: Container) -> None:
    """An event nobody could hear of yet is kept with its data as the JSON text it came in;
    held back, then heard, its notification shows that payload."""
    ingestion = Ingestion(lambda: None)

    def consume(envelope: Envelope) -> dict[str, object]:
        wire = encode(envelope)
        record = Record("referrals.events.v1", 0, 0, wire.key, wire.value, wire.headers)
        with Session(container.engine) as session:
            ingestion.handle(session, decode(wire.key, wire.value, wire.headers), record)
            session.commit()
        return decode(wire.key, wire.value, wire.headers).data

    j = Journey()
    first, second = j.submitted(), j.routed()
    second_data = consume(second)  # nobody subscribed: kept; its predecessor not here yet
    sent = subscribe(container, GP, Topic.SENT)
    first_data = consume(first)
    with container.uow() as uow:
        shown = uow.subscriptions.notifications(sent, 1, 2)
    assert [(e.kind, e.data) for e in shown] == [
        ("submitted", first_data),
        ("routed", second_data),
    ]
