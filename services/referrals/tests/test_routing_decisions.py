"""The referrals consumer records routing's decisions, in the consumer's transaction."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from referrals.bootstrap import bootstrap
from referrals.config import Settings
from referrals.domain.caller import Caller, Role
from referrals.domain.lifecycle import Action
from referrals.domain.model import Patient
from referrals.entrypoints.workers import handle_routing_event
from referrals.service_layer import handlers
from rx_contracts import (
    ClockKind,
    CohortFlags,
    Priority,
    ProviderType,
    ReferralRerouted,
    ReferralUnroutable,
    RejectionReason,
    ServiceType,
    SlaBreached,
    decode,
    examples,
    wrap,
)
from rx_contracts.topics import REFERRAL_EVENTS
from rx_messaging.consumer import PermanentError
from rx_messaging.records import Record
from rx_messaging.tables import OutboxMessage
from sqlmodel import Session, col, select

RECORD = Record("routing.decisions.v1", 0, 0, b"", b"", [])
GP = Caller("B81001", frozenset({Role.PROVIDER}))


@pytest.fixture
def container(database_url: str):
    container = bootstrap(Settings(database_url=database_url))
    yield container
    container.engine.dispose()


def submit(container) -> str:
    cmd = handlers.SubmitReferral(
        "B81001",
        Patient("BS5 0AA"),
        ServiceType.URGENT_COMMUNITY_RESPONSE,
        Priority.URGENT,
        CohortFlags(),
    )
    return handlers.submit_referral(cmd, GP, container.uow()).id


def deliver(container, event) -> None:
    with Session(container.engine) as session:
        handle_routing_event(session, event, RECORD)
        session.commit()


def test_a_routed_referral_records_its_assignment_and_history(container) -> None:
    rid = submit(container)
    event = wrap(examples.referral_routed(rid), source="/services/routing")
    deliver(container, event)
    referral = handlers.get_referral(rid, GP, container.uow())
    assert (referral.status.value, referral.assigned_org, referral.version) == (
        "routed",
        "RXA01",
        2,
    )
    with container.uow() as uow:
        history = uow.referrals.history(rid)
    assert [(h.action, h.event_id) for h in history] == [
        ("submit", history[0].event_id),
        ("route", event.id),
    ]


def test_a_decision_for_an_unknown_referral_is_poison(container) -> None:
    with (
        Session(container.engine) as session,
        pytest.raises(PermanentError, match="unknown referral"),
    ):
        handle_routing_event(session, wrap(examples.referral_routed("nope"), source="/s"), RECORD)


def test_a_decision_arriving_after_the_referral_was_cancelled_changes_nothing(container) -> None:
    rid = submit(container)
    handlers.transition(rid, Action.CANCEL, GP, 1, container.uow(), text="no longer needed")
    deliver(container, wrap(examples.referral_routed(rid), source="/services/routing"))
    referral = handlers.get_referral(rid, GP, container.uow())
    assert (referral.status.value, referral.assigned_org, referral.version) == (
        "cancelled",
        None,
        2,
    )


def breach(rid: str, org: str = "RXA01", auto_reroute: bool = True, kind: str = "acceptance"):
    at = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    return wrap(
        SlaBreached(
            referral_id=rid,
            clock_id=f"{rid}:{kind}:1",
            kind=ClockKind(kind),
            attempt=1,
            assigned_org=org,
            provider_type=ProviderType.RAPID_RESPONSE,
            service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
            priority=Priority.URGENT,
            policy_id="urgent-community-response/*",
            started_at=at - timedelta(minutes=30),
            deadline=at,
            breached_at=at,
            auto_reroute=auto_reroute,
        ),
        source="/services/routing",
        correlation_id="corr-breach",
    )


def deliver_routing_event(container, event) -> None:
    with Session(container.engine) as session:
        handle_routing_event(session, event, RECORD)
        session.commit()


def routed(container) -> str:
    rid = submit(container)
    deliver(container, wrap(examples.referral_routed(rid), source="/services/routing"))
    return rid


def test_an_acceptance_breach_takes_the_referral_back_as_the_platform(container) -> None:
    rid = routed(container)
    deliver_routing_event(container, breach(rid))
    referral = handlers.get_referral(rid, GP, container.uow())
    assert (referral.status.value, referral.assigned_org, referral.version) == (
        "submitted",
        None,
        3,
    )
    with container.uow() as uow:
        last = uow.referrals.history(rid)[-1]
    assert (last.action, last.actor_org, last.reason_code) == (
        "reroute",
        "RX",
        "acceptance-timeout",
    )
    with Session(container.engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.topic == REFERRAL_EVENTS)  # not the read's access event
            .order_by(col(OutboxMessage.id))
        ).all()
    event = decode(rows[-1].key, rows[-1].value, [(n, v.encode()) for n, v in rows[-1].headers])
    payload = event.payload()
    assert isinstance(payload, ReferralRerouted)
    assert (payload.reason_code, payload.actor.organisation, payload.provider_type) == (
        "acceptance-timeout",
        "RX",
        "rapid-response",
    ), "routing learns whose clock ran out and skips that organisation"
    assert event.correlationid == "corr-breach"


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("accepted in time", "accept"),
        ("another organisation holds it", "other-org"),
        ("policy does not re-route", "no-auto"),
        ("a response clock", "response"),
    ],
)
def test_a_breach_that_no_longer_applies_changes_nothing(container, what, change) -> None:
    rid = routed(container)
    event = breach(rid)
    if change == "accept":
        team = Caller("RXA01", frozenset({Role.PROVIDER}))
        handlers.transition(rid, Action.ACCEPT, team, 2, container.uow())
    elif change == "other-org":
        event = breach(rid, org="RXA02")
    elif change == "no-auto":
        event = breach(rid, auto_reroute=False)
    else:
        event = breach(rid, kind="response")
    before = handlers.get_referral(rid, GP, container.uow()).version
    deliver_routing_event(container, event)
    assert handlers.get_referral(rid, GP, container.uow()).version == before, what


# ---- decisions answer one routing attempt --------------------------------------------------

OPS = Caller("OPS01", frozenset({Role.OPS}))
LOGGER = "referrals.service_layer.handlers"


def decision(rid: str, sequence: int, org: str, attempt: int = 1):
    """Routing's decision numbered ``sequence``: the number the referrals service reserved
    after the step that sent the referral to routing."""
    payload = examples.referral_routed(
        rid, decision_id=f"d-{sequence}", sequence=sequence, attempt=attempt, assigned_org=org
    )
    return wrap(payload, source="/services/routing")


def unroutable(rid: str, sequence: int):
    payload = ReferralUnroutable(
        referral_id=rid,
        decision_id=f"d-{sequence}",
        sequence=sequence,
        service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
        priority=Priority.URGENT,
        locality="east",
        reason="no active organisation serves this locality",
        decided_at=datetime.now(UTC),
    )
    return wrap(payload, source="/services/routing")


def rerouted_before_the_first_decision(container) -> str:
    """Submitted (1, routing's decision 2 reserved), then re-routed by ops towards RXB02
    before routing's first decision arrived (3, decision 4 reserved)."""
    rid = submit(container)
    handlers.transition(
        rid,
        Action.REROUTE,
        OPS,
        1,
        container.uow(),
        target_provider_type=None,
        target_org="RXB02",
        text="RXA01 is closed today",
    )
    return rid


@pytest.mark.parametrize("late", ["routed", "unroutable"])
def test_a_late_decision_for_an_earlier_attempt_is_ignored_visibly(
    container, caplog: pytest.LogCaptureFixture, late: str
) -> None:
    rid = rerouted_before_the_first_decision(container)
    stale = decision(rid, 2, "RXA01") if late == "routed" else unroutable(rid, 2)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        deliver(container, stale)  # no PermanentError: a stale decision is not poison

    referral = handlers.get_referral(rid, GP, container.uow())
    assert (referral.status.value, referral.assigned_org, referral.version) == (
        "submitted",
        None,
        2,
    ), "the decision answered the attempt ops replaced"
    with container.uow() as uow:
        assert [h.action for h in uow.referrals.history(rid)] == ["submit", "reroute"]
    [said] = [r for r in caplog.records if r.name == LOGGER and stale.id in r.getMessage()]
    assert "stale" in said.getMessage() and "awaiting decision 4" in said.getMessage()

    deliver(container, decision(rid, 4, "RXB02", attempt=2))  # the re-route's own decision
    referral = handlers.get_referral(rid, GP, container.uow())
    assert (referral.status.value, referral.assigned_org, referral.version) == (
        "routed",
        "RXB02",
        3,
    )


def test_a_decision_still_answers_its_attempt_after_an_amendment_while_routing_decides(
    container,
) -> None:
    rid = submit(container)
    handlers.transition(rid, Action.AMEND, GP, 1, container.uow(), priority=Priority.STAT)

    deliver(container, decision(rid, 2, "RXA01"))  # numbered before the amendment (3)

    referral = handlers.get_referral(rid, GP, container.uow())
    assert (referral.status.value, referral.assigned_org, referral.priority) == (
        "routed",
        "RXA01",
        Priority.STAT,
    )


def test_a_decision_for_an_attempt_after_a_rejection_is_applied_and_the_first_is_not(
    container,
) -> None:
    rid = submit(container)
    deliver(container, decision(rid, 2, "RXA01"))
    team = Caller("RXA01", frozenset({Role.PROVIDER}))
    handlers.transition(
        rid, Action.REJECT, team, 2, container.uow(), reason=RejectionReason.AT_CAPACITY, text=None
    )  # 3, decision 4 reserved

    deliver(container, decision(rid, 2, "RXA01"))  # the first decision, redelivered late
    assert handlers.get_referral(rid, GP, container.uow()).status.value == "submitted"
    deliver(container, decision(rid, 4, "RXA02", attempt=2))
    referral = handlers.get_referral(rid, GP, container.uow())
    assert (referral.status.value, referral.assigned_org) == ("routed", "RXA02")
