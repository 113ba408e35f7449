"""Deliveries under load survive what goes wrong: the notify worker SIGKILLed mid-flight, a
receiver down (5 s here, 90 s with ``RX_RELIABILITY=full``), the broker SIGKILLed. Every
referring practice's endpoint ends up with every event of its referrals — numbers contiguous,
each referral's events in order — while a second subscription is not held up, and the
conservation check (deliveries included) finds nothing lost."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from devstack.load import REFERRERS
from devstack.polling import wait_for
from devstack.receiver import Mode, Receiver

from .conftest import FORM, FULL, Rig
from .test_faults_under_load import more_accepted

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

RECEIVER_OUTAGE_S = 90.0 if FULL else 5.0


def subscribe(rig: Rig, client: str, receiver: Receiver) -> dict[str, Any]:
    response = httpx.post(
        f"{rig.stack.url('notify')}/subscriptions",
        json={"topic": "referrals-sent", "endpoint": receiver.url, "content": "full-resource"},
        headers={
            "Authorization": f"Bearer {rig.tokens.get(client, 'notify')}",
            "Idempotency-Key": str(uuid.uuid4()),
        },
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()


def check_received(receiver: Receiver, expected: int) -> None:
    """Numbers 1..expected, each referral's events in its order, repeats with the same id."""
    first = receiver.unique(lambda d: d.headers["webhook-id"])
    numbers = [d.json()["eventnumber"] for d in first]
    assert numbers == list(range(1, expected + 1)), "contiguous, in number order"
    by_referral: dict[str, list[int]] = {}
    for d in first:
        event = d.json()
        if "sequence" in event:
            by_referral.setdefault(event["subject"], []).append(event["sequence"])
    for referral, sequences in by_referral.items():
        assert sequences == sorted(sequences), f"{referral} out of order: {sequences}"
    ids: dict[str, set[int]] = {}
    for d in receiver.received():
        ids.setdefault(d.headers["webhook-id"], set()).add(d.json()["eventnumber"])
    assert all(len(n) == 1 for n in ids.values()), "a repeat carries its first number"


@pytest.mark.timeout(900)
def test_deliveries_survive_a_killed_worker_a_receiver_outage_and_a_killed_broker(
    rig: Rig,
) -> None:
    # Answers take 50 ms, so deliveries are in flight when the worker is killed.
    receivers = {
        client: Receiver(mode=Mode.SLOW, slow_seconds=0.05).start() for client in REFERRERS
    }
    second = Receiver().start()
    subscriptions = {client: subscribe(rig, client, r) for client, r in receivers.items()}
    unaffected = subscribe(rig, REFERRERS[0], second)
    flaky = receivers[REFERRERS[0]]
    try:
        with rig.driver() as load:
            accepted = more_accepted(load, 0, "load before the worker dies")
            wait_for("deliveries under way", lambda: flaky.received(), timeout=60)
            rig.stack.kill("notify-worker")
            accepted = more_accepted(load, accepted, "load while the worker is dead")
            rig.stack.restart("notify-worker")

            flaky.stop()
            down, heard = time.monotonic(), len(second.received())
            wait_for(
                "the other subscription to go on while this endpoint is down",
                lambda: len(second.received()) > heard + 3,
                timeout=60,
            )
            wait_for(
                "the receiver outage to last its length",
                lambda: time.monotonic() - down >= RECEIVER_OUTAGE_S,
                timeout=RECEIVER_OUTAGE_S + 10,
            )
            flaky.start()

            rig.broker.kill()
            killed = time.monotonic()
            wait_for(
                "the broker outage to last its length",
                lambda: time.monotonic() - killed >= FORM.broker_outage_s,
                timeout=FORM.broker_outage_s + 10,
            )
            rig.broker.start(timeout=90)
            more_accepted(load, len(load.accepted()), "load after the broker came back")
            report = rig.conserved(load)
        print(report.summary())
        assert report.deliveries["numbered"] > 0 and report.deliveries["kept in error"] == 0
        for client, receiver in receivers.items():
            count = _events_since_start(rig, client, subscriptions[client]["id"])
            check_received(receiver, count)
        check_received(second, _events_since_start(rig, REFERRERS[0], unaffected["id"]))
    finally:
        for receiver in (*receivers.values(), second):
            receiver.stop()


def _events_since_start(rig: Rig, client: str, subscription_id: str) -> int:
    response = httpx.get(
        f"{rig.stack.url('notify')}/subscriptions/{subscription_id}",
        headers={"Authorization": f"Bearer {rig.tokens.get(client, 'notify')}"},
        timeout=10,
    )
    health = response.json()["health"]
    assert health["backlog"] == 0, health
    count: int = health["events_since_start"]
    assert count > 0
    return count
