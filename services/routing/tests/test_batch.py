"""A poll batch is applied in one transaction, with decisions, clocks and outbox rows queued in
the write buffer until the batch commits. A referral's whole journey inside one batch must end
exactly as it does when each event is applied on its own."""

from __future__ import annotations

from typing import Any

from routing.adapters.tables import ClockRow, DecisionRow, OrganisationLoadRow
from routing.bootstrap import Container
from routing.entrypoints.workers import handle_referral_event
from routing.service_layer import admin
from rx_contracts import (
    Envelope,
    Outcome,
    ProviderType,
    ReferralAccepted,
    ReferralCompleted,
    ReferralRejected,
    ReferralRerouted,
    ReferralStarted,
    ReferralStatus,
    RejectionReason,
    encode,
)
from rx_messaging.consumer import InboxConsumer, PermanentError
from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from rx_messaging.records import Record
from rx_messaging.tables import OutboxMessage
from sqlmodel import Session, col, func, select

from .support import consume, submitted, transition


def journey(rid: str) -> list[Envelope]:
    """Routed to RXA01, rejected, routed to RXA02, accepted, started, completed; then a second
    referral made unroutable by ops and routed again (its response clock resumes)."""
    other = f"{rid}-b"
    return [
        submitted(rid),
        transition(
            ReferralRejected, rid, rejected_by="RXA01", reason_code=RejectionReason.FAILED_CONTACT
        ),
        transition(
            ReferralAccepted,
            rid,
            holder="RXA02",
            status=ReferralStatus.ACCEPTED,
            assigned_org="RXA02",
        ),
        transition(ReferralStarted, rid, holder="RXA02", status=ReferralStatus.IN_PROGRESS),
        transition(
            ReferralCompleted,
            rid,
            holder="RXA02",
            status=ReferralStatus.COMPLETED,
            outcome=Outcome.REMAINED_AT_HOME,
        ),
        submitted(other),
        transition(ReferralRerouted, other, holder=None, target_org="NOPE1"),
        transition(ReferralRerouted, other, holder=None, target_org="RAC02"),
    ]


def state(container: Container, rid: str) -> dict[str, Any]:
    """What routing stored about a journey, without its random ids."""
    ids = (rid, f"{rid}-b")
    with Session(container.engine) as s:
        decisions = s.exec(
            select(DecisionRow)
            .where(col(DecisionRow.referral_id).in_(ids))
            .order_by(col(DecisionRow.referral_id), col(DecisionRow.attempt))
        )
        clocks = s.exec(
            select(ClockRow)
            .where(col(ClockRow.referral_id).in_(ids))
            .order_by(col(ClockRow.referral_id), col(ClockRow.id))
        )
        outbox = s.exec(
            select(OutboxMessage.topic, OutboxMessage.headers)
            .where(col(OutboxMessage.key).in_([i.encode() for i in ids]))
            .order_by(col(OutboxMessage.id))
        )
        return {
            "decisions": [
                (
                    d.referral_id.removeprefix(rid),
                    d.attempt,
                    d.outcome,
                    d.assigned_org,
                    d.accepted_at is not None,
                    d.release,
                )
                for d in decisions
            ],
            "clocks": [
                (
                    c.id.removeprefix(rid),
                    c.assigned_org,
                    c.stop_reason,
                    c.next_fire_at,
                    c.deadline_at,
                )
                for c in clocks
            ],
            "outbox": [(topic, dict(headers)["ce_type"]) for topic, headers in outbox],
        }


def loads(container: Container) -> dict[str, int]:
    with Session(container.engine) as s:
        return {row.ods_code: row.assigned for row in s.exec(select(OrganisationLoadRow))}


def test_a_journey_in_one_batch_ends_as_it_does_event_by_event(container, deliver) -> None:
    for envelope in journey("each"):
        deliver(envelope)
    after_each = loads(container)

    with Session(container.engine) as session:  # one transaction, as the consumer's batch
        for envelope in journey("batch"):
            consume(container, session, envelope)
        session.commit()

    batched, each = state(container, "batch"), state(container, "each")
    assert batched == each
    assert [d[1:4] for d in each["decisions"]] == [
        (1, "routed", "RXA01"),
        (2, "routed", "RXA02"),
        (1, "routed", "RXA01"),
        (2, "unroutable", None),
        (3, "routed", "RAC02"),
    ]
    assert any(topic == "routing.escalations.v1" for topic, _ in batched["outbox"])
    # The same assignments again: every organisation's count moved by the same amount.
    assert loads(container) == {org: 2 * n for org, n in after_each.items()}
    with Session(container.engine) as s:
        assert s.exec(select(func.count()).select_from(ClockRow)).one() == 2 * len(each["clocks"])
    assert ProviderType.ACUTE.value in {t.split(".")[1] for t, _ in batched["outbox"]}


def mixed(prefix: str) -> tuple[list[Envelope], list[Envelope]]:
    """Two referrals submitted, then a batch as a paced consumer reads one under load: a third
    referral submitted among later steps of the first two, the second rejected and routed
    again (its new clock queued, then stopped in the same batch), the third accepted (its
    clocks queued in the same batch)."""
    a, b, c = (f"{prefix}-{name}" for name in "abc")
    accepted = {"status": ReferralStatus.ACCEPTED, "assigned_org": "RXA01"}
    first = [submitted(a), submitted(b)]
    batch = [
        transition(ReferralAccepted, a, **accepted),
        submitted(c),
        transition(ReferralStarted, a, status=ReferralStatus.IN_PROGRESS),
        transition(
            ReferralRejected, b, rejected_by="RXA01", reason_code=RejectionReason.FAILED_CONTACT
        ),
        transition(ReferralAccepted, c, **accepted),
        transition(
            ReferralAccepted,
            b,
            holder="RXA02",
            status=ReferralStatus.ACCEPTED,
            assigned_org="RXA02",
        ),
        transition(
            ReferralCompleted,
            a,
            status=ReferralStatus.COMPLETED,
            outcome=Outcome.REMAINED_AT_HOME,
        ),
    ]
    return first, batch


def test_a_batch_of_referrals_at_different_steps_ends_as_event_by_event(container, deliver) -> None:
    first, batch = mixed("each")
    for envelope in first + batch:
        deliver(envelope)

    first, batch = mixed("batch")
    for group in (first, batch):
        with Session(container.engine) as session:  # one transaction, as a poll batch
            for envelope in group:
                consume(container, session, envelope)
            session.commit()

    for name in "abc":
        assert state(container, f"batch-{name}") == state(container, f"each-{name}"), name
    clocks = state(container, "batch-b")["clocks"]
    assert [reason for _, _, reason, _, _ in clocks].count(None) == 1  # the response clock
    assert all(reason for _, _, reason, _, _ in state(container, "batch-a")["clocks"])


def test_a_referral_submitted_twice_in_one_batch_is_routed_once(container) -> None:
    with Session(container.engine) as session:  # its case is still queued at the second
        for envelope in (submitted("twice"), submitted("twice"), submitted("once")):
            consume(container, session, envelope)
        session.commit()

    with Session(container.engine) as s:
        routed = s.exec(select(DecisionRow.referral_id).order_by(DecisionRow.referral_id)).all()
    assert routed == ["once", "twice"]


def test_daily_capacity_holds_within_one_batch(container) -> None:
    """The day loads a batch adds are kept in memory until it commits: the next referral of the
    same batch must still see them."""
    team = admin.get_organisation("RXA01", container.uow())
    admin.replace_organisation(
        admin.OrganisationData(
            team.ods_code, team.name, ProviderType(team.provider_type), team.localities, None, 2
        ),
        container.uow(),
    )
    with Session(container.engine) as session:
        for n in range(5):
            consume(container, session, submitted(f"cap-{n}"))
        session.commit()

    with Session(container.engine) as s:
        assigned = dict(
            s.exec(
                select(DecisionRow.referral_id, DecisionRow.assigned_org).where(
                    col(DecisionRow.referral_id).startswith("cap-")
                )
            ).all()
        )
    assert sorted(assigned.values()).count("RXA01") == 2
    assert loads(container) == {"RXA01": 2, "RXA02": 3}


def test_a_batch_with_poison_counts_the_day_load_of_the_referrals_routed(container) -> None:
    """One record fails after routing its referral (its load already counted in memory), one
    is a transition for a referral never submitted: the batch is applied again record by
    record, both go to the DLQ, and the day load counts exactly the referrals routed."""
    broker = InMemoryBroker()
    broker.create_topic("referrals.events.v1", 1)
    broker.create_topic("referrals.events.v1.dlq", 1)
    events = [submitted(f"ok-{n}") for n in range(3)]
    events += [submitted("fails-late"), transition(ReferralAccepted, "never-submitted")]
    events += [submitted(f"ok-{n}") for n in range(3, 6)]
    events.append(submitted("ok-1"))  # again, under a new event id: not routed twice
    InMemoryPublisher(broker).publish("referrals.events.v1", [tuple(encode(e)) for e in events])

    def handler(session: Session, envelope: Envelope, record: Record) -> None:
        handle_referral_event(container, session, envelope, record)
        if envelope.subject == "fails-late":
            raise PermanentError("fails after its referral was routed")

    source = InMemoryRecordSource(broker, "routing", topics=["referrals.events.v1"])
    consumer = InboxConsumer(
        "routing", source, container.engine, handler, InMemoryPublisher(broker)
    )
    result = consumer.consume_once(0)

    assert (result.applied, result.dead_lettered) == (7, 2)
    assert len(broker.records("referrals.events.v1.dlq")) == 2
    with Session(container.engine) as s:
        routed = s.exec(
            select(func.count()).select_from(DecisionRow).where(DecisionRow.outcome == "routed")
        ).one()
    assert routed == 6
    assert sum(loads(container).values()) == 6
