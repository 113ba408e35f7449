"""The routing consumer's effects in its own database: decisions with the rule that chose
them, events staged for the right topics, re-routing after rejection, redirect and ops
re-route, forwarding, capacity, and the directory read once per version."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from routing.adapters.tables import CaseRow, DecisionRow, OrganisationLoadRow
from routing.bootstrap import Container
from routing.service_layer import admin
from rx_contracts import (
    CohortFlags,
    Priority,
    ProviderType,
    ReferralAccepted,
    ReferralRedirected,
    ReferralRejected,
    ReferralRerouted,
    ReferralStatus,
    RejectionReason,
    ServiceType,
)
from rx_messaging.consumer import PermanentError
from sqlalchemy import event
from sqlmodel import Session, col, select

from .support import consume, outbox, short_types, submitted, transition


def decisions(container: Container, rid: str = "r-1") -> list[DecisionRow]:
    with Session(container.engine) as s:
        query = select(DecisionRow).where(DecisionRow.referral_id == rid)
        return list(s.exec(query.order_by(col(DecisionRow.attempt))))


def test_a_routed_referral_goes_to_decisions_and_the_provider_topic_as_one_event(
    container, deliver
) -> None:
    deliver(
        submitted("r-1", service_type=ServiceType.SOCIAL_CARE_ASSESSMENT, postcode_district="BS7")
    )
    [decision] = decisions(container)
    assert (decision.outcome, decision.assigned_org, decision.locality) == (
        "routed",
        "SCC02",
        "north",
    )
    assert (decision.rule_id, decision.rule_version) == ("north/social-care", 1)
    rows = outbox(container.engine)
    assert sorted(t for t, _ in rows) == ["provider.social-care.v1", "routing.decisions.v1"]
    assert len({e.id for _, e in rows}) == 1
    event = rows[0][1]
    assert event.correlationid == "corr-r-1", "the decision keeps the request's correlation id"
    assert (event.payload().rule_id, event.payload().rule_version) == ("north/social-care", 1)


def test_out_of_hours_the_rules_fall_through_to_the_duty_team(container, deliver, clock) -> None:
    clock.current = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)  # Monday 22:00 London
    deliver(
        submitted("r-1", service_type=ServiceType.SOCIAL_CARE_ASSESSMENT, postcode_district="BS7")
    )
    assert decisions(container)[0].assigned_org == "SCC03"


def test_an_end_of_life_patient_goes_to_the_team_its_rule_names_first(container, deliver) -> None:
    deliver(submitted("r-1", cohort=CohortFlags(end_of_life=True)))
    [decision] = decisions(container)
    assert (decision.assigned_org, decision.rule_id) == ("RXA02", "east/ucr-end-of-life")


def test_an_unroutable_referral_is_announced_and_escalated_to_ops(container, deliver) -> None:
    deliver(submitted("r-1", postcode_district="ZZ1"))
    [decision] = decisions(container)
    assert decision.outcome == "unroutable" and "ZZ1" in (decision.reason or "")
    assert short_types(outbox(container.engine)) == [
        ("routing.escalations.v1", "ReferralEscalated"),
        ("routing.decisions.v1", "ReferralUnroutable"),
    ]
    escalation = outbox(container.engine, "routing.escalations.v1")[0][1].payload()
    assert (escalation.cause, escalation.referral_id) == ("unroutable", "r-1")


def test_a_rejected_referral_goes_to_the_next_eligible_organisation(container, deliver) -> None:
    deliver(submitted("r-1"))
    rejected = transition(
        ReferralRejected, "r-1", rejected_by="RXA01", reason_code=RejectionReason.FAILED_CONTACT
    )
    deliver(rejected)
    assert [(d.attempt, d.assigned_org) for d in decisions(container)] == [
        (1, "RXA01"),
        (2, "RXA02"),
    ]
    assert decisions(container)[0].release == "rejected"
    deliver(
        transition(
            ReferralRejected,
            "r-1",
            holder="RXA02",
            rejected_by="RXA02",
            reason_code=RejectionReason.FAILED_CONTACT,
        )
    )
    last = decisions(container)[-1]
    assert (last.attempt, last.outcome) == (3, "unroutable"), (
        "nobody left: ops must act, the journey does not stop silently"
    )
    assert "RXA01 declined this referral; RXA02 declined this referral" in (last.reason or "")


def test_a_redirect_goes_to_the_named_type_and_ops_can_name_an_organisation(
    container, deliver
) -> None:
    deliver(submitted("r-1"))
    deliver(
        transition(
            ReferralRedirected,
            "r-1",
            redirected_by="RXA01",
            target_provider_type=ProviderType.SOCIAL_CARE,
        )
    )
    assert (decisions(container)[-1].assigned_org, decisions(container)[-1].rule_id) == (
        "SCC01",
        None,
    )
    deliver(transition(ReferralRerouted, "r-1", holder=None, target_org="RAC02"))
    assert decisions(container)[-1].assigned_org == "RAC02"
    deliver(transition(ReferralRerouted, "r-1", holder=None, target_org="NOPE1"))
    assert decisions(container)[-1].outcome == "unroutable"


def test_a_timeout_reroute_treats_the_holder_as_a_decliner(container, deliver) -> None:
    deliver(submitted("r-1"))
    deliver(transition(ReferralRerouted, "r-1", holder=None, reason_code="acceptance-timeout"))
    first, second = decisions(container)
    assert (first.release, second.assigned_org) == ("acceptance-timeout", "RXA02")
    with Session(container.engine) as s:
        assert s.get(CaseRow, "r-1").declined_by == ["RXA01"]


def test_transitions_are_forwarded_to_the_provider_topic_of_the_holder(container, deliver) -> None:
    deliver(submitted("r-1"))
    accepted = transition(
        ReferralAccepted, "r-1", status=ReferralStatus.ACCEPTED, assigned_org="RXA01"
    )
    deliver(accepted)
    forwarded = outbox(container.engine, "provider.rapid-response.v1")
    assert forwarded[-1][1].id == accepted.id, "the same event, not a copy with a new id"
    assert decisions(container)[0].accepted_at is not None


def test_a_transition_for_a_referral_routing_never_saw_is_poison(container) -> None:
    with Session(container.engine) as s, pytest.raises(PermanentError, match="never saw"):
        consume(container, s, transition(ReferralAccepted, "r-unknown"))


def test_a_second_submission_event_for_one_referral_does_not_route_it_twice(
    container, deliver
) -> None:
    deliver(submitted("r-1"))
    deliver(submitted("r-1"))
    assert len(decisions(container)) == 1


def test_daily_capacity_counts_assignments_and_gives_back_rejections(container, deliver) -> None:
    team = admin.get_organisation("RXA01", container.uow())
    admin.replace_organisation(
        admin.OrganisationData(
            team.ods_code, team.name, ProviderType(team.provider_type), team.localities, None, 2
        ),
        container.uow(),
    )
    for rid in ("r-1", "r-2"):
        deliver(submitted(rid))
    deliver(submitted("r-3"))
    assert decisions(container, "r-3")[0].assigned_org == "RXA02", "RXA01 is full for today"
    deliver(
        transition(ReferralRejected, "r-1", rejected_by="RXA01", reason_code=RejectionReason.OTHER)
    )
    deliver(submitted("r-4"))
    assert decisions(container, "r-4")[0].assigned_org == "RXA01", "a rejection frees its place"
    with Session(container.engine) as s:
        load = s.get(OrganisationLoadRow, ("RXA01", "2026-11-23"))
        assert load is not None and load.assigned == 2


def directory_loads(container: Container) -> list[str]:
    """Filled with each statement that reads the organisation table from now on: routing
    reads it once per load of the directory."""
    loads: list[str] = []

    @event.listens_for(container.engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement: str, *_: object) -> None:
        if re.search(r"\bFROM organisation\b(?!_)", statement):
            loads.append(statement)

    return loads


def test_the_directory_is_read_once_until_an_administrator_changes_it(container, deliver) -> None:
    loads = directory_loads(container)
    for rid in ("r-1", "r-2", "r-3"):
        deliver(submitted(rid))
    assert len(loads) == 1
    rules = [
        {
            "id": "all-to-rxa02",
            "service_types": ["urgent-community-response"],
            "candidates": ["RXA02"],
        }
    ]
    created = admin.create_rule_set("east", rules, "RX0AD", container.uow())
    admin.activate_rule_set("east", created.version, container.uow())
    deliver(submitted("r-4", priority=Priority.STAT))
    assert len(loads) == 2
    [decision] = decisions(container, "r-4")
    assert (decision.assigned_org, decision.rule_id, decision.rule_version) == (
        "RXA02",
        "east/all-to-rxa02",
        2,
    )
