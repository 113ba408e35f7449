"""After submission: re-routing on rejection, redirect and ops re-route, and forwarding every
transition to the provider type's topic."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from routing.adapters.tables import CaseRow, DecisionRow
from routing.bootstrap import bootstrap
from routing.config import Settings
from routing.seed import seed_demo
from routing.service_layer.handlers import route_referral_event
from rx_contracts import (
    Actor,
    Envelope,
    Priority,
    ProviderType,
    ReferralAccepted,
    ReferralRedirected,
    ReferralRejected,
    ReferralRerouted,
    ReferralStatus,
    RejectionReason,
    ServiceType,
    decode,
    examples,
    wrap,
)
from rx_messaging.consumer import PermanentError
from rx_messaging.tables import OutboxMessage
from sqlmodel import Session, col, select

RID = "r-1"


@pytest.fixture
def engine(tmp_path: Path):
    engine = bootstrap(Settings(database_url=f"sqlite:///{tmp_path / 'routing.db'}")).engine
    seed_demo(engine)
    deliver(
        engine, wrap(examples.referral_submitted(RID), source="/services/referrals")
    )  # BS5, east, UCR
    return engine


def deliver(engine, envelope: Envelope) -> None:
    with Session(engine) as s:
        route_referral_event(s, envelope)
        s.commit()


def change(event_type, holder: str | None = "RXA01", **fields) -> Envelope:
    common = dict(
        referral_id=RID,
        sequence=3,
        version=3,
        actor=Actor(organisation=holder or "RX0PS"),
        status=ReferralStatus.SUBMITTED,
        referrer_org="B81001",
        assigned_org=None,
        provider_type=ProviderType.RAPID_RESPONSE if holder else None,
        service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
        priority=Priority.URGENT,
        occurred_at=datetime.now(UTC),
    )
    return wrap(event_type(**(common | fields)), source="/services/referrals")


def decisions(engine) -> list[DecisionRow]:
    with Session(engine) as s:
        return list(s.exec(select(DecisionRow).order_by(col(DecisionRow.attempt))))


def published(engine) -> list[tuple[str, str]]:
    with Session(engine) as s:
        rows = s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
        return [
            (
                r.topic,
                decode(r.key, r.value, [(n, v.encode()) for n, v in r.headers]).type.split(".")[2],
            )
            for r in rows
        ]


def test_a_rejected_referral_goes_to_the_next_eligible_organisation(engine) -> None:
    deliver(
        engine,
        change(ReferralRejected, rejected_by="RXA01", reason_code=RejectionReason.FAILED_CONTACT),
    )
    assert [(d.attempt, d.assigned_org) for d in decisions(engine)] == [(1, "RXA01"), (2, "RXA02")]
    deliver(
        engine,
        change(
            ReferralRejected,
            holder="RXA02",
            rejected_by="RXA02",
            reason_code=RejectionReason.FAILED_CONTACT,
        ),
    )
    last = decisions(engine)[-1]
    assert (last.attempt, last.outcome) == (3, "unroutable"), (
        "nobody left: ops must act, the journey does not stop silently"
    )
    assert "no eligible rapid-response" in last.reason


def test_a_redirect_goes_to_the_named_type_and_ops_can_name_an_organisation(engine) -> None:
    deliver(
        engine,
        change(
            ReferralRedirected, redirected_by="RXA01", target_provider_type=ProviderType.SOCIAL_CARE
        ),
    )
    assert (decisions(engine)[-1].assigned_org, decisions(engine)[-1].rule_id) == ("SCC01", None)
    deliver(engine, change(ReferralRerouted, holder=None, target_org="RAC02"))
    assert decisions(engine)[-1].assigned_org == "RAC02"
    deliver(engine, change(ReferralRerouted, holder=None, target_org="NOPE1"))
    assert decisions(engine)[-1].outcome == "unroutable"


def test_transitions_are_forwarded_to_the_provider_topic_of_the_holder(engine) -> None:
    accepted = change(ReferralAccepted, status=ReferralStatus.ACCEPTED, assigned_org="RXA01")
    deliver(engine, accepted)
    assert published(engine)[-1] == ("provider.rapid-response.v1", "ReferralAccepted")
    with Session(engine) as s:
        forwarded = s.exec(
            select(OutboxMessage).where(OutboxMessage.topic == "provider.rapid-response.v1")
        ).all()
        assert forwarded[-1].event_id == accepted.id, "the same event, not a copy with a new id"
        assert s.get(CaseRow, RID).assigned_org == "RXA01"


def test_a_transition_for_a_referral_routing_never_saw_is_poison(engine) -> None:
    with Session(engine) as s, pytest.raises(PermanentError, match="never saw"):
        route_referral_event(s, change(ReferralAccepted, referral_id="r-unknown"))


def test_a_second_submission_event_for_one_referral_does_not_route_it_twice(engine) -> None:
    deliver(engine, wrap(examples.referral_submitted(RID), source="/services/referrals"))
    assert len(decisions(engine)) == 1
