"""The referrals consumer records routing's decisions, in the consumer's transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from referrals.bootstrap import bootstrap
from referrals.config import Settings
from referrals.domain.model import Patient
from referrals.entrypoints.workers import handle_routing_decision
from referrals.service_layer import handlers
from rx_contracts import CohortFlags, Priority, ServiceType, examples, wrap
from rx_messaging.consumer import PermanentError
from rx_messaging.records import Record
from sqlmodel import Session

RECORD = Record("routing.decisions.v1", 0, 0, b"", b"", [])


@pytest.fixture
def container(tmp_path: Path):
    return bootstrap(Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}"))


def submit(container) -> str:
    cmd = handlers.SubmitReferral(
        "B81001",
        None,
        Patient("BS5 0AA"),
        ServiceType.URGENT_COMMUNITY_RESPONSE,
        Priority.URGENT,
        CohortFlags(),
    )
    return handlers.submit_referral(cmd, container.uow()).id


def routed(referral_id: str):
    return wrap(
        examples.referral_routed(referral_id),
        source="/services/routing",
    )


def test_a_routed_referral_records_its_assignment_and_history(container) -> None:
    rid = submit(container)
    event = routed(rid)
    with Session(container.engine) as session:
        handle_routing_decision(session, event, RECORD)
        session.commit()
    referral = handlers.get_referral(rid, container.uow())
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


def test_a_decision_for_an_unknown_or_already_routed_referral_is_permanent(container) -> None:
    with (
        Session(container.engine) as session,
        pytest.raises(PermanentError, match="unknown referral"),
    ):
        handle_routing_decision(session, routed("nope"), RECORD)
    rid = submit(container)
    with Session(container.engine) as session:
        handle_routing_decision(session, routed(rid), RECORD)
        session.commit()
    with (
        Session(container.engine) as session,
        pytest.raises(PermanentError, match="cannot route a routed"),
    ):
        handle_routing_decision(session, routed(rid), RECORD)
