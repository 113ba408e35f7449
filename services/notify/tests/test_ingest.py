"""Ingestion against a real database: events in (in any order), numbered notifications out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from notify.adapters.tables import LifecycleEventRow, NotificationRow, ReferralViewRow
from notify.bootstrap import Container, bootstrap
from notify.config import Settings
from notify.domain.caller import Caller
from notify.domain.subscription import Channel, Content, Filters
from notify.domain.topics import Topic
from notify.entrypoints.workers import Ingestion
from notify.service_layer import handlers
from notify.service_layer.handlers import CreateSubscription
from notify.service_layer.ingest import ingest
from rx_contracts import Envelope, ReferralStatus, Role
from sqlmodel import Session, select

from .journeys import GP, OTHER_TEAM, TEAM, Journey


def stub_resolver(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]  # a public address; nothing ever connects in these tests


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'notify.db'}")
    built = bootstrap(settings, resolver=stub_resolver)
    yield built
    built.engine.dispose()


def subscribe(container: Container, org: str, topic: Topic, **filters: list[str]) -> str:
    caller = Caller(org, frozenset({Role.PROVIDER}))
    cmd = CreateSubscription(
        channel=Channel.WEBHOOK,
        topic=topic,
        endpoint=f"https://{org.lower()}.example.org/hook",
        content=Content.FULL_RESOURCE,
        filters=Filters.of(**filters),
    )
    return handlers.create_subscription(cmd, caller, container.uow(), container.checks).id


def feed(container: Container, *envelopes: Envelope) -> None:
    """Each event in its own transaction, as the consumer would (in batches)."""
    for envelope in envelopes:
        with Session(container.engine) as session:
            ingest(session, envelope)
            session.commit()


def received(container: Container, subscription_id: str) -> list[tuple[int, str, str]]:
    """(event number, kind, referral id) of everything numbered for the subscription."""
    with Session(container.engine) as session:
        rows = session.exec(
            select(NotificationRow, LifecycleEventRow)
            .join(LifecycleEventRow, NotificationRow.event_id == LifecycleEventRow.event_id)  # type: ignore[arg-type]
            .where(NotificationRow.subscription_id == subscription_id)
            .order_by(NotificationRow.event_number)  # type: ignore[arg-type]
        ).all()
    return [(n.event_number, e.kind, e.referral_id) for n, e in rows]


def kinds(container: Container, subscription_id: str) -> list[str]:
    return [kind for _, kind, _ in received(container, subscription_id)]


def test_the_referrer_hears_the_whole_journey_numbered_from_one(container: Container) -> None:
    sent = subscribe(container, GP, Topic.SENT)
    j = Journey()
    feed(container, j.submitted(), j.routed(), j.accepted(), j.started(), j.completed())
    assert received(container, sent) == [
        (1, "submitted", j.id),
        (2, "routed", j.id),
        (3, "accepted", j.id),
        (4, "started", j.id),
        (5, "completed", j.id),
    ]


def test_questions_messages_updates_identity_and_failure_are_heard_and_hold_nothing_back(
    container: Container,
) -> None:
    """Every numbered event of the referrals service is one notify acts on: one it skipped
    would leave a hole in the referral's sequence and hold back every later event."""
    sent = subscribe(container, GP, Topic.SENT)
    offered = subscribe(container, TEAM, Topic.OFFERED)
    j = Journey()
    feed(
        container,
        j.submitted(),
        j.routed(),
        j.info_requested(),
        j.nhs_number_recorded(ReferralStatus.INFO_REQUESTED),
        j.info_provided(),
        j.accepted(),
        j.started(),
        j.message(ReferralStatus.IN_PROGRESS),
        j.progress(),
        j.failed(),
    )
    journey = [
        "routed",
        "info-requested",
        "nhs-number-recorded",
        "info-provided",
        "accepted",
        "started",
        "message-added",
        "progress-reported",
        "failed",
    ]
    assert kinds(container, sent) == ["submitted", *journey]
    assert kinds(container, offered) == journey
    with Session(container.engine) as session:
        view = session.get(ReferralViewRow, j.id)
        assert view is not None and view.status == "failed"


def test_events_arriving_out_of_order_are_numbered_in_the_referrals_order(
    container: Container,
) -> None:
    sent = subscribe(container, GP, Topic.SENT)
    j = Journey()
    submitted, routed, accepted, started = j.submitted(), j.routed(), j.accepted(), j.started()
    feed(container, started, accepted)
    assert kinds(container, sent) == []  # held: their referral's first steps are missing
    feed(container, routed, submitted)
    assert kinds(container, sent) == ["submitted", "routed", "accepted", "started"]


def test_an_unnumbered_routing_decision_fills_the_gap_it_left(container: Container) -> None:
    """A decision routing could not number (a referral it saw before it kept numbers): the
    referrals service's numbers skip the decision's step, and the decision fills that gap by
    its attempt."""
    sent = subscribe(container, GP, Topic.SENT)
    j = Journey()
    submitted, routed, accepted = j.submitted(), j.routed(sequence=False), j.accepted()
    feed(container, submitted, accepted)
    assert kinds(container, sent) == ["submitted"]  # accepted (3) waits for step 2
    feed(container, routed)
    assert kinds(container, sent) == ["submitted", "routed", "accepted"]


def test_the_provider_hears_the_offer_and_stops_hearing_after_it_rejected(
    container: Container,
) -> None:
    first = subscribe(container, TEAM, Topic.OFFERED)
    second = subscribe(container, OTHER_TEAM, Topic.OFFERED)
    j = Journey()
    feed(container, j.submitted(), j.routed(TEAM), j.rejected(), j.routed(OTHER_TEAM))
    feed(container, j.accepted(), j.completed())
    assert kinds(container, first) == ["routed", "rejected"]
    assert kinds(container, second) == ["routed", "accepted", "completed"]


def test_a_timeout_takes_the_referral_away_and_the_holder_hears_it(container: Container) -> None:
    team = subscribe(container, TEAM, Topic.OFFERED)
    j = Journey()
    feed(container, j.submitted(), j.routed(TEAM))
    breach = j.breached(at_sequence=j.sequence)
    feed(container, breach, j.rerouted(), j.routed(OTHER_TEAM), j.amended())
    assert kinds(container, team) == ["routed", "sla-breached", "rerouted"]


def test_a_clock_event_waits_for_the_step_it_follows(container: Container) -> None:
    team = subscribe(container, TEAM, Topic.OFFERED)
    j = Journey()
    submitted, routed = j.submitted(), j.routed(TEAM)
    breach = j.breached(at_sequence=j.sequence)
    feed(container, submitted, breach)
    assert kinds(container, team) == []
    feed(container, routed)
    assert kinds(container, team) == ["routed", "sla-breached"]


def test_filters_and_other_organisations_events_are_not_numbered(container: Container) -> None:
    urgent_only = subscribe(container, GP, Topic.SENT, priorities=["urgent"])
    accepted_only = subscribe(container, GP, Topic.SENT, statuses=["accepted"])
    stranger = subscribe(container, "L81002", Topic.SENT)
    j = Journey()
    feed(container, j.submitted(), j.routed(), j.amended(), j.accepted())
    assert kinds(container, urgent_only) == ["submitted", "routed"]  # amended to asap
    assert kinds(container, accepted_only) == ["accepted"]
    assert kinds(container, stranger) == []


def test_numbers_are_gapless_per_subscription_across_referrals(container: Container) -> None:
    sent = subscribe(container, GP, Topic.SENT)
    journeys = [Journey() for _ in range(5)]
    for j in journeys:
        feed(container, j.submitted())
    for j in journeys:
        feed(container, j.routed(), j.accepted())
    numbers = [n for n, _, _ in received(container, sent)]
    assert numbers == list(range(1, 16))
    for j in journeys:
        mine = [kind for _, kind, rid in received(container, sent) if rid == j.id]
        assert mine == ["submitted", "routed", "accepted"]


def test_a_cancelled_referral_ignores_a_stale_unnumbered_decision(container: Container) -> None:
    sent = subscribe(container, GP, Topic.SENT)
    j = Journey()
    submitted = j.submitted()
    routed = j.routed(sequence=False)
    j.sequence -= 1  # today's referrals service: the cancel took the number
    cancelled = j.cancelled()
    feed(container, submitted, cancelled, routed)
    assert kinds(container, sent) == ["submitted", "cancelled"]
    with Session(container.engine) as session:
        view = session.get(ReferralViewRow, j.id)
        assert view is not None and view.status == "cancelled"


def test_an_off_subscription_numbers_nothing_more(container: Container) -> None:
    sent = subscribe(container, GP, Topic.SENT)
    j = Journey()
    feed(container, j.submitted())
    caller = Caller(GP, frozenset({Role.PROVIDER}))
    handlers.update_subscription(
        sent, caller, None, {"status": "off"}, container.uow(), container.checks, datetime.now(UTC)
    )
    feed(container, j.routed())
    assert kinds(container, sent) == ["submitted"]


def test_with_numbered_decisions_a_change_made_while_routing_decided_waits_for_it(
    container: Container,
) -> None:
    """Every event numbered: the decision takes the number reserved when the referral entered
    'submitted' (2), a referrer's amendment meanwhile the next one (3). The amendment arrives
    first and waits for the decision."""
    sent = subscribe(container, GP, Topic.SENT)
    team = subscribe(container, TEAM, Topic.OFFERED)
    j = Journey()
    submitted, routed, amended = j.submitted(), j.routed(TEAM), j.amended()
    assert (routed.data["sequence"], amended.data["sequence"]) == (2, 3)
    feed(container, submitted, amended)
    assert kinds(container, sent) == ["submitted"]
    feed(container, routed)
    assert kinds(container, sent) == ["submitted", "routed", "amended"]
    assert kinds(container, team) == ["routed", "amended"]


def test_the_worker_wakes_delivery_only_after_a_batch_that_numbered_something(
    container: Container,
) -> None:
    wakes: list[int] = []
    ingestion = Ingestion(lambda: wakes.append(1))

    def batch(*envelopes: Envelope) -> None:
        with Session(container.engine) as session:
            for envelope in envelopes:
                ingestion.handle(session, envelope, None)  # type: ignore[arg-type]
            session.commit()
        ingestion.after_batch()

    j = Journey()
    batch(j.submitted(), j.routed())
    assert wakes == []  # nobody subscribed: nothing to deliver
    subscribe(container, GP, Topic.SENT)
    batch(j.accepted())
    assert wakes == [1]
    batch()
    assert wakes == [1]  # that batch's notifications were woken for once


def test_a_subscription_made_mid_stream_hears_every_event_applied_after_it_from_one(
    container: Container,
) -> None:
    """A subscription hears of the events applied by ingestion after its creation committed,
    numbered from 1, however far its referrals had got: entitled and filtered by what was
    applied before it (an offer made before it), and an event held before it is heard when
    the step it waited for comes after it."""
    before, held_early, waiting = Journey(), Journey(), Journey()
    submitted, routed = held_early.submitted(), held_early.routed()
    feed(
        container,
        before.submitted(),
        before.routed(TEAM),  # offered to TEAM before anyone subscribed
        routed,  # its referral's first step has not come yet: held back
        waiting.submitted(),
    )
    step_two = waiting.routed(TEAM)
    accepted_early = waiting.accepted()
    feed(container, accepted_early)  # waits for step 2
    sent = subscribe(container, GP, Topic.SENT)
    offered = subscribe(container, TEAM, Topic.OFFERED)
    feed(container, before.accepted(), submitted, step_two, before.completed())
    assert received(container, sent) == [
        (1, "accepted", before.id),
        (2, "submitted", held_early.id),
        (3, "routed", held_early.id),
        (4, "routed", waiting.id),
        (5, "accepted", waiting.id),
        (6, "completed", before.id),
    ]
    assert received(container, offered) == [
        (1, "accepted", before.id),
        (2, "routed", held_early.id),
        (3, "routed", waiting.id),
        (4, "accepted", waiting.id),
        (5, "completed", before.id),
    ]
    with container.uow() as uow:
        shown = uow.subscriptions.notifications(sent, 1, 6)
    # What a notification shows: the event's payload and the referral after it.
    assert [(e.data["sequence"], e.state["status"]) for e in shown] == [
        (3, "accepted"),
        (1, "submitted"),
        (2, "routed"),
        (2, "routed"),
        (3, "accepted"),
        (4, "completed"),
    ]
    assert [e.state["assigned_org"] for e in shown] == [TEAM, None, TEAM, TEAM, TEAM, TEAM]


def test_events_nobody_could_hear_of_are_placed_in_the_order_they_came(
    container: Container,
) -> None:
    """Placed later, events that came while nobody was subscribed end where they would have:
    a cancellation that took an unnumbered decision's turn still wins over the decision."""
    j = Journey()
    submitted = j.submitted()
    routed = j.routed(sequence=False)
    j.sequence -= 1  # the cancel took the number
    cancelled = j.cancelled()
    feed(container, submitted, cancelled, routed)
    sent = subscribe(container, GP, Topic.SENT)
    breach = j.breached(at_sequence=2)  # a clock event: not on the sent topic
    feed(container, breach)
    assert kinds(container, sent) == []
    with Session(container.engine) as session:
        view = session.get(ReferralViewRow, j.id)
        assert view is not None and view.status == "cancelled"
        placements = {
            e.event_id: e.placement for e in session.exec(select(LifecycleEventRow)).all()
        }
    assert placements == {
        submitted.id: "apply",
        cancelled.id: "apply",
        routed.id: "stale",
        breach.id: "apply",
    }
