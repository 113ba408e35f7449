"""The outbox relay: what the API committed reaches the broker, in order, even after an outage."""

from __future__ import annotations

import pytest
from rx_contracts import decode
from rx_messaging.fake import InMemoryBroker, InMemoryPublisher
from rx_messaging.outbox import add_to_outbox
from rx_messaging.records import PublishError
from rx_messaging.relay import OutboxRelay
from sqlmodel import Session

from .conftest import make_event, pending_count

TOPIC, OTHER = "routing.decisions.v1", "provider.rapid-response.v1"


@pytest.fixture
def broker() -> InMemoryBroker:
    b = InMemoryBroker()
    b.create_topic(TOPIC, 3)
    b.create_topic(OTHER, 3)
    return b


def stage(engine, *envelopes, topics=(TOPIC,)) -> None:
    with Session(engine) as s:
        for env in envelopes:
            add_to_outbox(s, env, topics)
        s.commit()


def test_rows_are_published_once_with_the_same_event_id_on_every_topic(broker, engine) -> None:
    env = make_event("r-1")
    stage(engine, env, topics=(TOPIC, OTHER))
    relay = OutboxRelay(engine, InMemoryPublisher(broker))
    assert relay.relay_once() == 2
    assert relay.relay_once() == 0
    assert [decode(r.key, r.value, r.headers).id for r in broker.records(TOPIC)] == [env.id]
    assert [decode(r.key, r.value, r.headers).id for r in broker.records(OTHER)] == [env.id]
    assert pending_count(engine) == 0


class _Sends(InMemoryPublisher):
    """Counts the sends the relay makes (each one acknowledged as a whole)."""

    sends = 0

    def publish_many(self, batches, timeout: float = 15) -> None:
        self.sends += 1
        super().publish_many(batches, timeout)


def test_one_cycle_sends_every_topics_rows_at_once(broker, engine) -> None:
    """One acknowledgement to wait for per cycle, however many topics its rows go to."""
    stage(engine, make_event("r-1"), make_event("r-2"), topics=(TOPIC, OTHER))
    publisher = _Sends(broker)
    assert OutboxRelay(engine, publisher).relay_once() == 4
    assert publisher.sends == 1
    assert len(broker.records(TOPIC)) == len(broker.records(OTHER)) == 2


def test_one_referrals_events_keep_their_order(broker, engine) -> None:
    events = [make_event("r-7") for _ in range(5)]
    stage(engine, *events)
    OutboxRelay(engine, InMemoryPublisher(broker)).relay_once()
    published = [decode(r.key, r.value, r.headers).id for r in broker.records(TOPIC)]
    assert published == [e.id for e in events]


def test_while_the_broker_is_down_rows_wait_and_go_out_when_it_returns(broker, engine) -> None:
    env = make_event("r-1")
    stage(engine, env)
    relay = OutboxRelay(engine, InMemoryPublisher(broker))
    broker.down = True
    with pytest.raises(PublishError):
        relay.relay_once()
    assert pending_count(engine) == 1
    broker.down = False
    assert relay.relay_once() == 1
    assert pending_count(engine) == 0
    assert len(broker.records(TOPIC)) == 1
