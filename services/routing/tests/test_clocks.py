"""SLA clocks with a clock moved by hand: warnings at the policy's fraction, breaches at the
deadline, stopped when met, fired once, and a worker that wakes for the next deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from routing.adapters.tables import ClockRow
from routing.domain.sla import Firing, SlaPolicy, due, event_id, next_fire, policy_for
from routing.entrypoints.clock_worker import ClockWorker
from routing.service_layer import admin
from rx_contracts import (
    FailureReason,
    Priority,
    ReferralAccepted,
    ReferralFailed,
    ReferralInfoProvided,
    ReferralInfoRequested,
    ReferralRerouted,
    ReferralStarted,
    ReferralStatus,
    ServiceType,
)
from rx_messaging.wake import CLOCKS, commit_signal
from sqlmodel import Session, select

from .support import MONDAY_10AM, outbox, short_types, submitted, transition

UCR = ServiceType.URGENT_COMMUNITY_RESPONSE
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


# ---- pure clock logic ------------------------------------------------------------------------


def test_a_clock_warns_once_then_breaches_once() -> None:
    warn, deadline = T0 + timedelta(minutes=45), T0 + timedelta(hours=1)
    assert due(warn, False, deadline, False, T0 + timedelta(minutes=44)) == []
    assert due(warn, False, deadline, False, warn) == [Firing.WARNING]
    assert due(warn, True, deadline, False, warn + timedelta(minutes=1)) == []
    assert due(warn, True, deadline, False, deadline) == [Firing.BREACH]
    assert due(warn, True, deadline, True, deadline + timedelta(hours=5)) == []


def test_a_warning_overtaken_by_its_deadline_is_not_sent() -> None:
    warn, deadline = T0 + timedelta(minutes=45), T0 + timedelta(hours=1)
    assert due(warn, False, deadline, False, deadline + timedelta(minutes=3)) == [Firing.BREACH]


def test_next_fire_is_the_warning_then_the_deadline_then_nothing() -> None:
    warn, deadline = T0 + timedelta(minutes=45), T0 + timedelta(hours=1)
    assert next_fire(warn, False, deadline, False) == warn
    assert next_fire(warn, True, deadline, False) == deadline
    assert next_fire(None, False, deadline, False) == deadline
    assert next_fire(warn, True, deadline, True) is None


def test_the_exact_policy_wins_over_the_service_types_catch_all() -> None:
    catch_all = SlaPolicy(UCR, None, timedelta(minutes=30), None)
    stat = SlaPolicy(UCR, Priority.STAT, timedelta(minutes=5), None)
    assert policy_for([catch_all, stat], UCR, Priority.STAT) is stat
    assert policy_for([catch_all, stat], UCR, Priority.ROUTINE) is catch_all
    assert policy_for([stat], ServiceType.GP_REVIEW, Priority.STAT) is None


# ---- clocks started by the consumer, fired by the worker ---------------------------------


def worker(container, max_sleep: float = 0.5) -> ClockWorker:
    return ClockWorker(container.uow, container.clock, max_sleep=max_sleep)


def clock_events(container) -> list[tuple[str, str]]:
    return [
        (topic, kind)
        for topic, kind in short_types(outbox(container.engine))
        if kind.startswith("Sla") or kind == "ReferralEscalated"
    ]


def test_an_unaccepted_rapid_response_referral_warns_then_breaches_for_its_holder(
    container, deliver, clock
) -> None:
    deliver(submitted("r-1"))  # demo policy: accept within 30 min, warn at 75%
    w = worker(container)
    clock.advance(minutes=22, seconds=29)
    assert w.fire_due() == 0 and clock_events(container) == []
    clock.advance(seconds=1)
    assert w.fire_due() == 1
    assert clock_events(container) == [
        ("routing.sla.v1", "SlaWarning"),
        ("provider.rapid-response.v1", "SlaWarning"),
    ]
    warning = outbox(container.engine, "routing.sla.v1")[0][1]
    assert warning.id == event_id("r-1:acceptance:1", "warning"), "a deterministic id"
    payload = warning.payload()
    assert (payload.kind, payload.assigned_org, payload.attempt) == ("acceptance", "RXA01", 1)
    assert payload.sequence == 2, "it follows the decision that started it, numbered 2"
    assert payload.deadline == MONDAY_10AM + timedelta(minutes=30)
    assert warning.correlationid == "corr-r-1"
    clock.advance(minutes=7, seconds=30)
    assert w.fire_due() == 1
    breach = outbox(container.engine, "routing.sla.v1")[-1][1].payload()
    assert (type(breach).__name__, breach.auto_reroute, breach.assigned_org) == (
        "SlaBreached",
        True,
        "RXA01",
    )
    assert "ReferralEscalated" not in str(clock_events(container)), (
        "an automatic re-route follows, so ops are not needed yet"
    )
    clock.advance(minutes=30)
    assert w.fire_due() == 0, "the acceptance clock is done; the response clock warns at 1:30"


def test_accepting_in_time_stops_the_acceptance_clock(container, deliver, clock) -> None:
    deliver(submitted("r-1"))
    clock.advance(minutes=10)
    deliver(transition(ReferralAccepted, "r-1", status=ReferralStatus.ACCEPTED, at=clock.now()))
    clock.advance(minutes=30)
    worker(container).fire_due()
    assert clock_events(container) == []
    with Session(container.engine) as s:
        acceptance = s.get(ClockRow, "r-1:acceptance:1")
        assert (acceptance.stop_reason, acceptance.next_fire_at) == ("accepted", None)


def test_a_question_pauses_the_acceptance_clock_and_the_answer_resumes_it_later(
    container, deliver, clock
) -> None:
    deliver(submitted("r-1"))  # accept within 30 min, warn at 22:30
    clock.advance(minutes=10)
    deliver(
        transition(
            ReferralInfoRequested,
            "r-1",
            status=ReferralStatus.INFO_REQUESTED,
            assigned_org="RXA01",
            at=clock.now(),
        )
    )
    clock.advance(hours=1)  # far past the first deadline: the clock waits for the answer
    w = worker(container)
    assert w.fire_due() == 0 and clock_events(container) == []
    deliver(
        transition(
            ReferralInfoProvided,
            "r-1",
            holder="B81001",
            status=ReferralStatus.ROUTED,
            assigned_org="RXA01",
            at=clock.now(),
        )
    )
    with Session(container.engine) as s:
        acceptance = s.get(ClockRow, "r-1:acceptance:1")
        assert acceptance.stop_reason is None
        assert acceptance.deadline_at.replace(tzinfo=UTC) == MONDAY_10AM + timedelta(
            minutes=30, hours=1
        ), "20 minutes were left when it paused, and 20 minutes are left now"
    clock.advance(minutes=12, seconds=29)
    assert w.fire_due() == 0
    clock.advance(seconds=1)  # 22:30 of the clock's own time: the warning
    assert w.fire_due() == 1
    assert clock_events(container) == [
        ("routing.sla.v1", "SlaWarning"),
        ("provider.rapid-response.v1", "SlaWarning"),
    ]


def test_a_failed_referral_stops_every_clock(container, deliver, clock) -> None:
    deliver(submitted("r-1"))
    deliver(transition(ReferralAccepted, "r-1", status=ReferralStatus.ACCEPTED))
    deliver(
        transition(
            ReferralFailed,
            "r-1",
            status=ReferralStatus.FAILED,
            reason_code=FailureReason.FAILED_CONTACT,
        )
    )
    clock.advance(hours=3)
    assert worker(container).fire_due() == 0 and clock_events(container) == []
    with Session(container.engine) as s:
        response = s.get(ClockRow, "r-1:response")
        assert response.stop_reason == "failed"


def test_a_response_breach_with_no_remedy_is_escalated_to_ops(container, deliver, clock) -> None:
    deliver(submitted("r-1"))
    deliver(transition(ReferralAccepted, "r-1", status=ReferralStatus.ACCEPTED))
    clock.advance(hours=2)  # respond within 2 hours; nobody started
    w = worker(container)
    w.fire_due()
    assert clock_events(container) == [
        ("routing.sla.v1", "SlaBreached"),
        ("provider.rapid-response.v1", "SlaBreached"),
        ("routing.escalations.v1", "ReferralEscalated"),
    ], "the warning time passed with the deadline, so only the breach is sent"
    escalation = outbox(container.engine, "routing.escalations.v1")[0][1].payload()
    assert (escalation.cause, escalation.assigned_org) == ("sla-breached", "RXA01")


def test_starting_work_stops_the_response_clock(container, deliver, clock) -> None:
    deliver(submitted("r-1"))
    deliver(transition(ReferralAccepted, "r-1", status=ReferralStatus.ACCEPTED))
    deliver(transition(ReferralStarted, "r-1", status=ReferralStatus.IN_PROGRESS))
    clock.advance(hours=3)
    worker(container).fire_due()
    assert clock_events(container) == []


def test_an_unroutable_referral_stops_its_clocks_and_a_later_route_resumes_the_response_clock(
    container, deliver, clock
) -> None:
    deliver(submitted("r-1"))
    deliver(transition(ReferralRerouted, "r-1", holder=None, target_org="NOPE1"))
    clock.advance(hours=3)
    worker(container).fire_due()
    fired = [kind for _, kind in clock_events(container) if kind.startswith("Sla")]
    assert fired == [], "unroutable is terminal until ops act (they got an escalation)"
    deliver(transition(ReferralRerouted, "r-1", holder=None, target_org="RXA02"))
    worker(container).fire_due()
    assert ("routing.sla.v1", "SlaBreached") in clock_events(container), (
        "routed again after its response deadline: the response clock breaches at once"
    )


def test_policies_changed_by_an_administrator_apply_to_new_clocks(
    container, deliver, clock
) -> None:
    admin.put_policy(admin.PolicyData(UCR, Priority.STAT, 60, None, 0.5, False), container.uow())
    deliver(submitted("r-1", priority=Priority.STAT))
    with Session(container.engine) as s:
        clocks = {c.kind: c for c in s.exec(select(ClockRow))}
    assert set(clocks) == {"acceptance"}, "this policy sets no response time"
    assert clocks["acceptance"].deadline_at == MONDAY_10AM + timedelta(seconds=60)
    assert clocks["acceptance"].policy_id == "urgent-community-response/stat"


def test_the_worker_sleeps_until_the_next_deadline_but_never_past_its_bound(
    container, deliver, clock
) -> None:
    w = worker(container, max_sleep=0.5)
    assert w.seconds_until_next() == 0.5, "no clocks: the bound"
    admin.put_policy(admin.PolicyData(UCR, Priority.STAT, 2, None, None, False), container.uow())
    deliver(submitted("r-1", priority=Priority.STAT))
    clock.advance(seconds=1.75)
    assert w.seconds_until_next() == 0.25
    clock.advance(seconds=1)
    assert w.seconds_until_next() == 0.0, "overdue: no sleep at all"
    waits: list[float] = []
    w.step(waits.append)
    assert waits == [0.5] and ("routing.sla.v1", "SlaBreached") in clock_events(container)


def test_a_clock_due_soon_wakes_the_sleeping_worker_and_one_due_later_waits_for_its_look(
    container, deliver, clock
) -> None:
    clock.current = datetime.now(UTC)  # the wake-up compares deadlines with the real time
    woken = commit_signal(container.engine, CLOCKS)  # what ``python -m routing clock`` waits on
    try:
        woken.wait(0)  # PostgreSQL: LISTEN before anything commits
        deliver(submitted("r-later", at=clock.now()))  # first warning in 22.5 minutes
        assert not woken.wait(0.5), "found by the worker's next look, long before it is due"
        admin.put_policy(
            admin.PolicyData(UCR, Priority.STAT, 2, None, None, False), container.uow()
        )
        deliver(submitted("r-soon", at=clock.now(), priority=Priority.STAT))  # due in 2 s
        assert woken.wait(10), "due before the worker would look again"
    finally:
        woken.close()


def test_a_resumed_clock_due_soon_wakes_the_sleeping_worker(container, deliver, clock) -> None:
    woken = commit_signal(container.engine, CLOCKS)
    try:
        woken.wait(0)
        deliver(submitted("r-1"))
        asked = dict(status=ReferralStatus.INFO_REQUESTED, assigned_org="RXA01", at=clock.now())
        deliver(transition(ReferralInfoRequested, "r-1", **asked))
        woken.wait(0)  # whatever the start woke: now asleep
        clock.advance(hours=1)
        answered = dict(status=ReferralStatus.ROUTED, assigned_org="RXA01", at=clock.now())
        deliver(transition(ReferralInfoProvided, "r-1", holder="B81001", **answered))
        assert woken.wait(10), "resumed with a deadline long past in the real time: due now"
    finally:
        woken.close()


def test_firing_survives_a_new_worker_and_never_fires_twice(container, deliver, clock) -> None:
    deliver(submitted("r-1"))
    clock.advance(minutes=23)
    assert worker(container).fire_due() == 1
    assert worker(container).fire_due() == 0, "a restarted worker reads the fired state"
    clock.advance(minutes=7)
    assert worker(container).fire_due() == 1
    assert [k for _, k in clock_events(container)].count("SlaBreached") == 2  # two topics
