"""Processes die mid-load — each worker SIGKILLed and restarted, each consumer frozen past its
group session, the referrals API killed between its commit and its answer, the broker SIGKILLed
for a while — and nothing accepted is lost, nothing takes effect twice.

GP practices keep submitting at a fixed rate and simulated providers keep accepting,
rejecting, starting and completing what they are routed, while the faults happen; then the
conservation check compares every service's database, the provider topics and the audit
chain with what the API accepted."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from devstack.load import LoadDriver
from devstack.polling import wait_for
from rx_messaging.kafka import SESSION_TIMEOUT_MS

from .conftest import FORM, Rig

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

WORKERS = (
    "referrals-relay",
    "routing-relay",
    "routing-consumer",
    "routing-clock",
    "audit-consumer",
    "audit-relay",
)


def more_accepted(load: LoadDriver, than: int, what: str) -> int:
    """Wait (bounded) until the API accepted another ``FORM.between_faults`` referrals."""
    return wait_for(
        what,
        lambda: (n := len(load.accepted())) >= than + FORM.between_faults and n,
        timeout=60,
    )


def first_routed(load: LoadDriver, timeout: float = 60) -> int:
    """Wait (bounded) until a referral reached a provider; how many the API accepted by then."""
    wait_for(
        "the first referral to reach a provider",
        lambda: any(j.routed for j in load.journeys),
        timeout=timeout,
    )
    return len(load.accepted())


def test_every_worker_sigkilled_mid_load_and_restarted_loses_nothing(rig: Rig) -> None:
    with rig.driver() as load:
        accepted = first_routed(load)
        for round_ in range(1, FORM.rounds + 1):
            for worker in WORKERS:
                accepted = more_accepted(load, accepted, f"load before killing {worker}")
                rig.stack.kill(worker)
                accepted = more_accepted(load, accepted, f"load while {worker} is dead")
                rig.stack.restart(worker)
            print(f"round {round_}: every worker killed and restarted")
        report = rig.conserved(load)
    print(report.summary())
    journeys = load.journeys
    assert report.stages["accepted"] == len(journeys) > 0
    assert any("complete" in step for j in journeys for step in j.steps), "journeys ran to the end"


def test_api_killed_between_commit_and_answer_retry_gets_the_original_result(rig: Rig) -> None:
    with rig.driver() as load:
        accepted = more_accepted(load, 0, "load before the fault")
        rig.stack.kill("referrals-api")
        rig.stack.restart("referrals-api", {"RX_FAULT_EXIT_AFTER_COMMIT": "1"})
        wait_for(
            "the API to exit right after committing a POST",
            lambda: "referrals-api" in rig.stack.dead(),
            timeout=60,
        )
        rig.stack.restart("referrals-api")
        more_accepted(load, accepted, "load after the API came back")
        wait_for(
            "a caller whose answer was lost to retry and get the stored one",
            lambda: [c for j in list(load.journeys) for c in j.recovered],
            timeout=60,
        )
        report = rig.conserved(load)
    recovered = [(j, c) for j in load.journeys for c in j.recovered]
    print(f"answered from the key store after a lost answer: {[c for _, c in recovered]}")
    # Conserved means: each such call took effect once (no second referral, no step twice),
    # and every referral stored was acknowledged to the caller who sent it.
    assert not report.missing["acknowledged"]
    assert not any(report.duplicates.values())


CONSUMERS = ("referrals-consumer", "routing-consumer", "audit-consumer", "notify-worker")
FROZEN_S = SESSION_TIMEOUT_MS / 1000 + 3
"""Longer than a group session: the broker puts the frozen member out of its group."""


def sessions_expired(rig: Rig, role: str) -> int:
    """How often the role's processes logged that the broker no longer had them in the group."""
    return sum(
        rig.stack.log_file(name).read_text(errors="replace").count("Heartbeat session expired")
        for name in rig.stack.named(role)
    )


def test_every_consumer_frozen_past_its_group_session_resumes_and_loses_nothing(
    rig: Rig,
) -> None:
    """A consumer stalled longer than its group session (a paused VM, a long pause) is put out
    of its group while it holds a batch. Thawed, it finishes that batch, its offsets are
    refused, it rejoins and reads again from the last commit (its inbox makes the repeats
    no-ops), and goes on: nothing lost, nothing applied twice, and it keeps consuming (the
    load after the thaw reaches the end of the check)."""
    with rig.driver() as load:
        accepted = first_routed(load)
        for consumer in CONSUMERS:
            accepted = more_accepted(load, accepted, f"load before freezing {consumer}")
            expired = sessions_expired(rig, consumer)
            rig.stack.freeze(consumer)
            try:
                time.sleep(FROZEN_S)  # the fault's length, not a check
            finally:
                rig.stack.thaw(consumer)
            wait_for(
                f"{consumer} to find itself put out of its group",
                lambda: sessions_expired(rig, consumer) > expired,  # noqa: B023
                timeout=30,
            )
            assert consumer not in rig.stack.dead(), f"{consumer} survives being frozen"
            print(f"{consumer} frozen for {FROZEN_S:g} s, put out of its group and thawed")
        accepted = more_accepted(load, accepted, "load after the last thaw")
        report = rig.conserved(load)
    print(report.summary())
    # ``conserved`` checked everything the module's stack accepted, this test's load among it.
    assert load.accepted(), "the load ran"
    assert not any(report.duplicates.values())


def test_broker_sigkilled_under_load_the_api_keeps_accepting_and_nothing_is_lost(
    rig: Rig,
) -> None:
    """Last in this module: it kills the module's broker (and starts it again)."""
    with rig.driver() as load:
        more_accepted(load, 0, "load before the broker dies")
        rig.broker.kill()
        killed, before = time.monotonic(), len(load.accepted())

        def outage_over() -> bool:
            answers = [j.attempts[0] for j in list(load.journeys) if j.attempts]
            assert set(answers) <= {"201"}, f"the API did not answer 201 at once: {set(answers)}"
            return time.monotonic() - killed >= FORM.broker_outage_s

        wait_for("the outage to last its length", outage_over, timeout=FORM.broker_outage_s + 10)
        during = len(load.accepted()) - before
        rig.broker.start(timeout=90)
        more_accepted(load, before + during, "load after the broker came back")
        report = rig.conserved(load)
    print(f"accepted during the {FORM.broker_outage_s:g} s outage: {during}\n{report.summary()}")
    assert during >= FORM.rate * FORM.broker_outage_s / 2, "the API kept accepting"
    first = Counter(j.attempts[0] for j in load.journeys)
    assert set(first) == {"201"}, f"every POST answered 201 at once; first answers: {first}"
