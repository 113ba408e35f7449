"""A rapid-response referral nobody accepts: the platform warns the team, records the breach
and re-routes it to the next team — on the provider topic, in the referral's history and in
the audit log. The stack runs with a policy of seconds, set through the admin API."""

from __future__ import annotations

import httpx
import pytest

from .conftest import as_client, audit_entries, gp, read_topic, submit, timeline, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

FLOW = [
    "ReferralSubmitted",
    "ReferralRouted",
    "SlaWarning",
    "SlaBreached",
    "ReferralRerouted",
    "ReferralRouted",
]


def test_an_unaccepted_referral_is_warned_breached_and_rerouted(
    kafka_bootstrap, stack_factory
) -> None:
    stack = stack_factory(kafka_bootstrap)
    policy = httpx.put(
        f"{stack.url('routing')}/sla-policies/urgent-community-response/urgent",
        json={"accept_within_seconds": 4, "warn_at_fraction": 0.5, "auto_reroute": True},
        headers=as_client(stack, "admin", "routing"),
    )
    assert policy.status_code == 200, policy.text
    rid = submit(stack)["id"]  # urgent community response in BS5: RXA01 first, then RXA02

    wait_for("the submission in the audit log", lambda: audit_entries(stack, rid))
    wait_for(
        "warning, breach and re-route in the audit timeline",
        lambda: timeline(stack, rid)[: len(FLOW)] == FLOW,
        timeout=60,
    )
    on_topic = read_topic(
        kafka_bootstrap,
        "provider.rapid-response.v1",
        rid,
        until=lambda seen: len(seen) >= 5,
    )
    first = [
        (e.type.split(".")[2], e.payload().model_dump().get("assigned_org")) for e in on_topic[:5]
    ]
    assert first == [
        ("ReferralRouted", "RXA01"),
        ("SlaWarning", "RXA01"),
        ("SlaBreached", "RXA01"),
        ("ReferralRerouted", None),
        ("ReferralRouted", "RXA02"),
    ], "the team sees its warning and breach, then the referral moves on"
    breach = on_topic[2].payload()
    assert (breach.kind, breach.auto_reroute, breach.breached_at >= breach.deadline) == (
        "acceptance",
        True,
        True,
    )
    assert breach.sequence == 2, "it comes after the decision (2) that started its clock"
    rerouted = on_topic[3].payload()
    assert (rerouted.actor.organisation, rerouted.reason_code) == ("RX", "acceptance-timeout")

    history = httpx.get(
        f"{stack.url('referrals')}/referrals/{rid}/history", headers=gp(stack)
    ).json()
    assert [(h["action"], h["actor_org"], h["reason_code"]) for h in history[:4]] == [
        ("submit", "B81001", None),
        ("route", "RX", None),
        ("reroute", "RX", "acceptance-timeout"),
        ("route", "RX", None),
    ]
    assert [h["sequence"] for h in history[:4]] == [1, 2, 3, 4], "no holes"
    by_type = {e["type"].split(".")[2]: e for e in audit_entries(stack, rid)}
    assert by_type["SlaBreached"]["actor_org"] == "RX"
    ops = as_client(stack, "ops", "audit")
    verified = httpx.get(f"{stack.url('audit')}/audit/verify", headers=ops, timeout=30)
    assert verified.json()["ok"] is True
