"""Governed administrative changes through the real processes and broker: an administrator
changes an SLA policy and the routing rules over routing's API; each change travels on
routing.admin.v1 and lands on the audit chain with who made it and what it was before and
after, and the chain still verifies."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from devstack.stack import Stack

from .conftest import as_client, read_topic, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

CHANGED = "rx.routing.RoutingConfigChanged.v1"
ADMIN_ORG = "RXADM"  # the demo client "admin"


def admin(stack: Stack) -> dict[str, str]:
    return as_client(stack, "admin", "routing", **{"X-Practitioner": "C7654321"})


def changes_on_audit(stack: Stack) -> list[dict[str, Any]]:
    """The administrators' changes on the audit chain (the demo seed's left out)."""
    response = httpx.get(
        f"{stack.url('audit')}/audit/entries",
        params={"type": CHANGED, "organisation": ADMIN_ORG},
        headers=as_client(stack, "ops", "audit"),
        timeout=10,
    )
    response.raise_for_status()
    return list(response.json()["items"])


def test_policy_and_rule_changes_enter_the_audit_chain_with_who_before_and_after(
    kafka_bootstrap, stack_factory
) -> None:
    stack = stack_factory(kafka_bootstrap)
    routing = stack.url("routing")
    policies = httpx.get(f"{routing}/sla-policies", headers=admin(stack), timeout=10).json()
    [ucr] = [
        p
        for p in policies
        if (p["service_type"], p["priority"]) == ("urgent-community-response", "*")
    ]
    stricter = {
        "accept_within_seconds": ucr["accept_within_seconds"] // 2,
        "respond_within_seconds": ucr["respond_within_seconds"],
        "warn_at_fraction": ucr["warn_at_fraction"],
        "auto_reroute": ucr["auto_reroute"],
    }
    put = httpx.put(
        f"{routing}/sla-policies/urgent-community-response/*",
        json=stricter,
        headers=admin(stack),
        timeout=10,
    )
    assert put.status_code == 200, put.text
    [live] = [
        r
        for r in httpx.get(
            f"{routing}/rule-sets", params={"locality": "east"}, headers=admin(stack), timeout=10
        ).json()
        if r["active"]
    ]
    uploaded = httpx.post(
        f"{routing}/rule-sets/east",
        json={"description": "same rules, reviewed", "rules": live["rules"]},
        headers=admin(stack),
        timeout=10,
    )
    assert uploaded.status_code == 201, uploaded.text
    version = uploaded.json()["version"]
    activated = httpx.post(
        f"{routing}/rule-sets/east/{version}/activate", headers=admin(stack), timeout=10
    )
    assert activated.status_code == 200, activated.text

    # On the topic, keyed by what changed, so one thing's changes stay in order.
    on_topic = read_topic(
        kafka_bootstrap,
        "routing.admin.v1",
        "sla-policy:urgent-community-response/*",
        until=lambda seen: any(e.data["actor"]["organisation"] == ADMIN_ORG for e in seen),
    )
    # The session broker also carries other stacks' seeds (the platform, RX) and changes.
    orgs = [e.data["actor"]["organisation"] for e in on_topic]
    assert orgs[0] == "RX" and orgs[-1] == ADMIN_ORG, (
        "the demo seed's policy, then the administrator's change"
    )

    def ours() -> list[dict[str, Any]] | None:
        found = changes_on_audit(stack)
        by_action = {
            action: [e for e in found if e["payload"]["action"] == action]
            for action in ("replaced", "created", "activated")
        }
        policy = [
            e
            for e in by_action["replaced"]
            if e["payload"]["after"].get("accept_within_seconds")
            == stricter["accept_within_seconds"]
        ]
        upload = [
            e for e in by_action["created"] if e["payload"]["after"].get("version") == version
        ]
        activation = [
            e
            for e in by_action["activated"]
            if e["payload"]["after"] == {"active_version": version}
        ]
        if policy and upload and activation:
            return [policy[-1], upload[-1], activation[-1]]
        return None

    entries = wait_for("the three changes on the audit chain", ours, timeout=30)
    policy, upload, activation = entries
    assert {e["topic"] for e in entries} == {"routing.admin.v1"}
    assert {e["actor_org"] for e in entries} == {ADMIN_ORG}
    assert all(e["referral_id"] is None for e in entries)
    assert policy["payload"]["actor"] == {"organisation": ADMIN_ORG, "practitioner": "C7654321"}
    assert (policy["payload"]["subject"], policy["payload"]["subject_id"]) == (
        "sla-policy",
        "urgent-community-response/*",
    )
    assert policy["payload"]["action"] == "replaced"
    assert policy["payload"]["before"]["accept_within_seconds"] == ucr["accept_within_seconds"]
    assert policy["payload"]["after"]["accept_within_seconds"] == stricter["accept_within_seconds"]
    assert (upload["payload"]["action"], upload["payload"]["after"]["version"]) == (
        "created",
        version,
    )
    assert activation["payload"]["action"] == "activated"
    assert (activation["payload"]["before"], activation["payload"]["after"]) == (
        {"active_version": live["version"]},
        {"active_version": version},
    )

    verified = httpx.get(
        f"{stack.url('audit')}/audit/verify", headers=as_client(stack, "ops", "audit"), timeout=30
    ).json()
    assert verified["ok"] is True, verified
