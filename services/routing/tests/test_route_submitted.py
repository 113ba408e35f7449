"""The routing consumer's effect: a decision row and its event staged for two topics."""

from __future__ import annotations

from pathlib import Path

from routing.adapters.tables import DecisionRow
from routing.bootstrap import bootstrap
from routing.config import Settings
from routing.seed import seed_demo
from routing.service_layer.handlers import route_referral_event
from rx_contracts import Priority, ServiceType, decode, examples, wrap
from rx_messaging.tables import OutboxMessage
from sqlmodel import Session, select


def submitted(district: str) -> object:
    return wrap(
        examples.referral_submitted(
            service_type=ServiceType.SOCIAL_CARE_ASSESSMENT,
            priority=Priority.ROUTINE,
            postcode_district=district,
        ),
        source="/services/referrals",
        correlation_id="corr-1",
    )


def route(tmp_path: Path, district: str) -> tuple[list[DecisionRow], list[OutboxMessage]]:
    engine = bootstrap(Settings(database_url=f"sqlite:///{tmp_path / 'routing.db'}")).engine
    assert seed_demo(engine) > 0
    assert seed_demo(engine) == 0, "seeding twice adds nothing"
    with Session(engine) as session:
        route_referral_event(session, submitted(district))
        session.commit()
        return list(session.exec(select(DecisionRow))), list(session.exec(select(OutboxMessage)))


def test_a_routed_referral_goes_to_decisions_and_the_provider_topic_as_one_event(
    tmp_path: Path,
) -> None:
    [decision], rows = route(tmp_path, "BS7")
    assert (decision.outcome, decision.assigned_org, decision.locality) == (
        "routed",
        "SCC02",
        "north",
    )
    assert sorted(r.topic for r in rows) == ["provider.social-care.v1", "routing.decisions.v1"]
    assert len({r.event_id for r in rows}) == 1
    event = decode(rows[0].key, rows[0].value, [(n, v.encode()) for n, v in rows[0].headers])
    assert event.correlationid == "corr-1", "the decision keeps the request's correlation id"
    assert event.payload().rule_id == "assessment-to-social-care"


def test_an_unroutable_referral_is_announced_on_the_decisions_topic_only(tmp_path: Path) -> None:
    [decision], rows = route(tmp_path, "ZZ1")
    assert decision.outcome == "unroutable" and "ZZ1" in (decision.reason or "")
    assert [r.topic for r in rows] == ["routing.decisions.v1"]
