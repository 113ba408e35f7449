"""The fault tests on the production shape, run by ``make test``: every service on
PostgreSQL, two processes of every role. One process of each worker role is SIGKILLed
mid-load (its twin carries on, the consumer group rebalances), and the API processes die
between a commit and its answer; then the conservation check proves nothing was lost or
done twice, each referral's events reached its provider topic in the order routing committed
them, and no team was given more than its daily capacity — which is set low here, so the two
routing consumers really decide against it.

The whole reliability suite runs in this shape with ``--stack-db postgres
--stack-replicas 2`` (docs/development.md)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from devstack.broker import Broker
from devstack.polling import wait_for
from devstack.pytest_plugin import StackShape

from .conftest import Rig, start_rig
from .test_faults_under_load import WORKERS, first_routed, more_accepted

# Thirty processes and PostgreSQL start, load runs and drains: more than the default 300 s
# on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.timeout(900)]

PRODUCTION = StackShape("postgres", 2)
CAPACITY = {"RXA01": 4}
"""The east locality's first rapid response team fills up early; the next team takes the
rest."""


@pytest.fixture(scope="module")
def shaped_rig(
    module_broker: Broker,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Rig]:
    rig = start_rig(module_broker, tmp_path_factory.mktemp("production"), request, PRODUCTION)
    try:
        set_capacities(rig, CAPACITY)
        yield rig
    finally:
        rig.stack.stop()


def set_capacities(rig: Rig, capacities: dict[str, int]) -> None:
    """Lower teams' daily capacities through the routing admin API."""
    routing = rig.stack.url("routing")
    headers = {"Authorization": f"Bearer {rig.tokens.get('admin', 'routing')}"}
    for code, capacity in capacities.items():
        current = httpx.get(f"{routing}/organisations/{code}", headers=headers, timeout=10)
        assert current.status_code == 200, current.text
        body = {k: v for k, v in current.json().items() if k not in ("ods_code", "updated_at")}
        changed = httpx.put(
            f"{routing}/organisations/{code}",
            json={**body, "daily_capacity": capacity},
            headers=headers,
            timeout=10,
        )
        assert changed.status_code == 200, changed.text


def test_one_process_of_each_worker_role_sigkilled_keeps_order_capacity_and_every_referral(
    shaped_rig: Rig,
) -> None:
    rig = shaped_rig
    with rig.driver() as load:
        accepted = first_routed(load, timeout=90)
        for worker in WORKERS:
            one = f"{worker}.1"
            accepted = more_accepted(load, accepted, f"load before killing {one}")
            rig.stack.kill(one)
            accepted = more_accepted(load, accepted, f"load while {one} is dead")
            rig.stack.restart(one)
        report = rig.conserved(load)
    print(report.summary())
    assert report.topics_read and report.out_of_order, "the provider topics were read in order"
    assert not any(report.out_of_order.values())
    assert report.over_capacity == []
    assert any("complete" in step for j in load.journeys for step in j.steps)


def test_api_processes_killed_between_commit_and_answer_retry_gets_the_original_result(
    shaped_rig: Rig,
) -> None:
    rig = shaped_rig
    with rig.driver() as load:
        accepted = more_accepted(load, 0, "load before the fault")
        # Both processes, so the fault does not wait on which one the callers' connections
        # reach: each exits right after the first POST it commits.
        rig.stack.kill("referrals-api")
        rig.stack.restart("referrals-api", {"RX_FAULT_EXIT_AFTER_COMMIT": "1"})
        wait_for(
            "both API processes to exit right after committing a POST",
            lambda: {"referrals-api.1", "referrals-api.2"} <= set(rig.stack.dead()),
            timeout=90,
        )
        rig.stack.restart("referrals-api")
        more_accepted(load, accepted, "load after the API processes came back")
        wait_for(
            "a caller whose answer was lost to retry and get the stored one",
            lambda: [c for j in list(load.journeys) for c in j.recovered],
            timeout=60,
        )
        report = rig.conserved(load)
    print(report.summary())
    assert not report.missing["acknowledged"]
    assert not any(report.duplicates.values())
    assert not any(report.out_of_order.values())
