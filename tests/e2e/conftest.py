"""Fixtures that run the real service processes (the same ones `make run` starts), in the
shape ``--stack-db`` / ``--stack-replicas`` choose (SQLite, one process per role by default)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from devstack.polling import wait_for  # noqa: F401  (the e2e tests import it from here)
from devstack.ports import free_ports
from devstack.pytest_plugin import StackShape, stack_databases
from devstack.stack import DEFAULT_PORTS, Stack
from devstack.topics import ensure_topics
from issuer.clients import demo_secret
from kafka import KafkaConsumer
from rx_contracts import Envelope, decode
from rx_contracts.topics import all_topics

REFERRAL = {
    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
    "patient": {"nhs_number": "9434765919", "postcode": "BS5 0AA"},
    "service_type": "urgent-community-response",
    "priority": "urgent",
}


def shaped_stack(
    request: pytest.FixtureRequest,
    data_dir: Path,
    bootstrap_servers: str,
    shape: StackShape,
    group_prefix: str,
) -> Stack:
    """A stack (not started) of ``shape`` on free ports: its databases are dropped when the
    requesting fixture is torn down."""
    ensure_topics(bootstrap_servers, all_topics())
    tag = uuid.uuid4().hex[:8]
    return Stack(
        data_dir,
        bootstrap_servers,
        ports=dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True)),
        group_prefix=f"{group_prefix}{tag}-",
        databases=stack_databases(request, shape.db, f"e2e_{tag}_"),
        replicas=shape.replicas,
    )


def print_tails(stack: Stack) -> None:
    for name in stack.names():
        print(f"\n--- {name} ---\n{stack.tail(name)}")


@pytest.fixture
def stack_factory(
    tmp_path: Path, request: pytest.FixtureRequest, stack_shape: StackShape
) -> Iterator[Callable[..., Stack]]:
    """Start the whole platform against a broker (in ``shape``, the session's by default);
    stops everything at teardown and, if the test failed, prints every process's log tail."""
    stacks: list[Stack] = []

    def start(bootstrap_servers: str, shape: StackShape | None = None) -> Stack:
        stack = shaped_stack(
            request,
            tmp_path / f"stack{len(stacks)}",
            bootstrap_servers,
            shape or stack_shape,
            "e2e-",
        )
        stacks.append(stack)
        stack.start(timeout=90 * stack.replicas)
        return stack

    yield start
    failed = getattr(request.node, "rep_call", None)
    for stack in stacks:
        if failed is not None and failed.failed:
            print_tails(stack)
        stack.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


_tokens: dict[tuple[str, str, str], str] = {}


def token(issuer_url: str, client_id: str, service: str) -> str:
    """An access token of the demo client ``client_id`` for ``service``, from the issuer the
    stack runs (client credentials, as a provider system gets one); cached per issuer."""
    key = (issuer_url, client_id, service)
    if key not in _tokens:
        response = httpx.post(
            f"{issuer_url}/oauth2/token",
            data={"grant_type": "client_credentials", "audience": service},
            auth=(client_id, demo_secret(client_id)),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        _tokens[key] = response.json()["access_token"]
    return _tokens[key]


def as_client(
    stack: Stack, client_id: str, service: str = "referrals", **extra: str
) -> dict[str, str]:
    """Headers for calling ``service`` as the demo client ``client_id`` (an organisation's
    code in lower case, or ``ops`` / ``admin``)."""
    return {"Authorization": f"Bearer {token(stack.url('issuer'), client_id, service)}", **extra}


def gp(stack: Stack) -> dict[str, str]:
    """The referring practice B81001, its practitioner G1234567 acting."""
    return as_client(stack, "b81001", **{"X-Practitioner": "G1234567"})


def provider_headers(stack: Stack, org: str, **extra: str) -> dict[str, str]:
    """A provider organisation's headers for a POST (fresh Idempotency-Key)."""
    return as_client(stack, org.lower(), **{"Idempotency-Key": str(uuid.uuid4()), **extra})


def submit(stack: Stack, body: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {**gp(stack), "Idempotency-Key": str(uuid.uuid4())}
    response = httpx.post(
        f"{stack.url('referrals')}/referrals", json=body or REFERRAL, headers=headers, timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()


ACCESS = "rx.referrals.ReferralAccessed.v1"
"""Reads of a referral are audited too; the journey helpers below leave them out."""


def audit_entries(stack: Stack, referral_id: str, with_reads: bool = False) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.url('audit')}/audit/entries",
        params={"referral_id": referral_id},
        headers=as_client(stack, "ops", "audit"),
        timeout=10,
    )
    response.raise_for_status()
    return [e for e in response.json()["items"] if with_reads or e["type"] != ACCESS]


def timeline(stack: Stack, referral_id: str) -> list[str]:
    """Short event type names of the referral's journey (reads left out), in the order they
    happened."""
    response = httpx.get(
        f"{stack.url('audit')}/audit/referrals/{referral_id}/timeline",
        headers=as_client(stack, "ops", "audit"),
        timeout=10,
    )
    response.raise_for_status()
    return [step["type"].rsplit(".", 2)[-2] for step in response.json() if step["type"] != ACCESS]


def read_topic(
    bootstrap_servers: str,
    topic: str,
    key: str,
    until: Callable[[list[Envelope]], bool],
    timeout: float = 30,
) -> list[Envelope]:
    """Every event on ``topic`` keyed ``key``, read by a fresh consumer group from the start,
    once ``until`` holds for what was read (or the timeout passes)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers.split(","),
        group_id=f"e2e-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    seen: list[Envelope] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(seen):
            for records in consumer.poll(timeout_ms=500).values():
                seen += [
                    decode(r.key, r.value, list(r.headers))
                    for r in records
                    if r.key == key.encode()
                ]
        # Read a little longer, so a duplicate arriving just behind would be caught.
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            for records in consumer.poll(timeout_ms=200).values():
                seen += [
                    decode(r.key, r.value, list(r.headers))
                    for r in records
                    if r.key == key.encode()
                ]
    finally:
        consumer.close(autocommit=False)
    return seen
