"""While Kafka is down the referrals API keeps accepting; once it is back, everything accepted
is published and flows through, once."""

from __future__ import annotations

import httpx
import pytest

from .conftest import audit_entries, gp, submit, timeline, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def test_referrals_accepted_while_the_broker_is_down_are_published_when_it_returns(
    broker_factory, stack_factory
) -> None:
    broker = broker_factory()
    stack = stack_factory(broker.bootstrap_servers)
    before = submit(stack)
    wait_for(
        "the first referral to be routed", lambda: len(audit_entries(stack, before["id"])) == 2
    )

    broker.stop()
    during = [submit(stack) for _ in range(3)]
    assert all(r["status"] == "submitted" for r in during)
    read = httpx.get(f"{stack.url('referrals')}/referrals/{during[0]['id']}", headers=gp(stack))
    assert read.status_code == 200, "reads keep working too"

    broker.start(timeout=90)
    for referral in during:
        entries = wait_for(
            f"referral {referral['id']} in the audit log",
            lambda r=referral: (e := audit_entries(stack, r["id"])) and len(e) >= 2 and e,
            timeout=60,
        )
        assert len(entries) == 2 and len({e["event_id"] for e in entries}) == 2, "each event once"
        assert timeline(stack, referral["id"]) == ["ReferralSubmitted", "ReferralRouted"]
    for referral in during:
        wait_for(
            f"the referrals service to record routing of {referral['id']}",
            lambda r=referral: (
                httpx.get(
                    f"{stack.url('referrals')}/referrals/{r['id']}", headers=gp(stack)
                ).json()["status"]
                == "routed"
            ),
            timeout=60,
        )
    assert stack.dead() == [], "no worker died of the outage"
