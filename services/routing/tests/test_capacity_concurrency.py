"""Several routing consumers at once never give an organisation more than its daily capacity:
the place is claimed with one conditional update, and a consumer that loses the race routes
the referral on."""

from __future__ import annotations

import threading

from routing.adapters.tables import DecisionRow, OrganisationLoadRow
from routing.bootstrap import Container
from routing.entrypoints.workers import handle_referral_event
from routing.service_layer import admin
from rx_contracts import ProviderType, encode
from rx_messaging.consumer import InboxConsumer
from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from sqlmodel import Session, col, select

from .support import submitted

CONSUMERS, PER_CONSUMER, CAPACITY = 4, 10, 5


def set_capacity(container: Container, code: str, capacity: int) -> None:
    team = admin.get_organisation(code, container.uow())
    admin.replace_organisation(
        admin.OrganisationData(
            team.ods_code,
            team.name,
            ProviderType(team.provider_type),
            team.localities,
            None,
            capacity,
        ),
        container.uow(),
    )


def test_concurrent_consumers_never_exceed_a_daily_capacity(container: Container) -> None:
    set_capacity(container, "RXA01", CAPACITY)
    broker = InMemoryBroker()
    consumers = []
    for n in range(CONSUMERS):
        topic = f"referrals.events.v1.part-{n}"  # each consumer its own stream, as partitions
        broker.create_topic(topic, 1)
        events = [submitted(f"race-{n}-{i}") for i in range(PER_CONSUMER)]
        InMemoryPublisher(broker).publish(topic, [tuple(encode(e)) for e in events])
        consumers.append(
            InboxConsumer(
                f"routing-{n}",
                InMemoryRecordSource(broker, f"routing-{n}", topics=[topic]),
                container.engine,
                lambda s, e, r: handle_referral_event(container, s, e, r),
                InMemoryPublisher(broker),
            )
        )
    start = threading.Barrier(CONSUMERS)
    errors: list[BaseException] = []

    def run(consumer: InboxConsumer) -> None:
        start.wait()
        applied, rounds = 0, 0
        try:
            while applied < PER_CONSUMER and rounds < 50:  # a lost race is applied again
                applied += consumer.consume_once(timeout=0).applied
                rounds += 1
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in consumers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors

    with Session(container.engine) as s:
        assigned = s.exec(
            select(DecisionRow.referral_id, DecisionRow.assigned_org).where(
                col(DecisionRow.referral_id).startswith("race-")
            )
        ).all()
        loads = {row.ods_code: row.assigned for row in s.exec(select(OrganisationLoadRow))}
    assert len(assigned) == CONSUMERS * PER_CONSUMER  # every referral routed, once
    to_capped = [referral for referral, org in assigned if org == "RXA01"]
    assert len(to_capped) == CAPACITY
    assert loads["RXA01"] == CAPACITY
    assert sum(loads.values()) == CONSUMERS * PER_CONSUMER
