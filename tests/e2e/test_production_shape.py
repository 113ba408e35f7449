"""The journeys on the production shape: every service on a PostgreSQL database of its own
and two processes of every role (two relays, two consumers in each consumer group, two API
processes behind the balancer on each service's port).

A representative subset, run by ``make test``: the walking skeleton and the lifecycle
journeys, imported from their modules and run here against this module's stack. The whole
e2e suite runs in this shape with ``--stack-db postgres --stack-replicas 2``
(docs/development.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from devstack.pytest_plugin import StackShape
from devstack.stack import PROCESSES, Stack
from sqlalchemy import create_engine, text

from .conftest import print_tails, shaped_stack, submit, wait_for
from .test_lifecycle_journeys import (  # noqa: F401  (collected here, on this module's stack)
    test_rejected_then_rerouted_to_the_next_team_which_accepts,
    test_submitted_routed_accepted_started_completed,
)
from .test_walking_skeleton import (  # noqa: F401
    test_a_referral_reaches_the_provider_topic_and_the_audit_log_once_in_order,
)

# Starting thirty processes on PostgreSQL takes minutes on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.timeout(900)]

PRODUCTION = StackShape("postgres", 2)


@pytest.fixture(scope="module")
def journeys_stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """One production-shaped stack for this module (each test uses its own referrals)."""
    data_dir: Path = tmp_path_factory.mktemp("production-shape")
    stack = shaped_stack(request, data_dir, kafka_bootstrap, PRODUCTION, "shape-")
    stack.start(timeout=180)
    yield stack
    if request.session.testsfailed:
        print_tails(stack)
    stack.stop()


@pytest.fixture
def shared_stack(journeys_stack: Stack) -> Stack:
    """The walking skeleton takes the shared stack; here it gets the module's."""
    return journeys_stack


def stored_in(url: str, referral_id: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM referral WHERE id = :id"), {"id": referral_id}
            )
            return found.scalar_one() == 1
    finally:
        engine.dispose()


def test_every_role_runs_twice_on_postgresql_and_one_api_process_down_is_not_noticed(
    journeys_stack: Stack,
) -> None:
    stack = journeys_stack
    assert stack.dead() == []
    for spec in PROCESSES:
        assert stack.named(spec.name) == [f"{spec.name}.1", f"{spec.name}.2"]
    rid = submit(stack)["id"]
    assert stored_in(stack.databases["referrals"], rid), "the referral is in PostgreSQL"

    stack.kill("referrals-api.1")
    try:
        answered = [submit(stack)["id"] for _ in range(4)]  # each through the balancer
        assert len(set(answered)) == 4
    finally:
        stack.restart("referrals-api.1")
    wait_for(
        "the restarted API process to answer on its own port",
        lambda: healthy(stack, "referrals-api.1"),
        timeout=60,
    )


def healthy(stack: Stack, name: str) -> bool:
    try:
        return httpx.get(f"{stack.ops_url(name)}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
