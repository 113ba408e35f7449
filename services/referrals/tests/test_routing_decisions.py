"""The referrals consumer records routing's decisions, in the consumer's transaction."""

from __future__ import annotations

import pytest
from referrals.bootstrap import bootstrap
from referrals.config import Settings
from referrals.domain.caller import Caller, Role
from referrals.domain.lifecycle import Action
from referrals.domain.model import Patient
from referrals.entrypoints.workers import handle_routing_decision
from referrals.service_layer import handlers
from rx_contracts import CohortFlags, Priority, ServiceType, examples, wrap
from rx_messaging.consumer import PermanentError
from rx_messaging.records import Record
from sqlmodel import Session

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
        handle_routing_decision(session, event, RECORD)
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
        handle_routing_decision(
            session, wrap(examples.referral_routed("nope"), source="/s"), RECORD
        )


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
