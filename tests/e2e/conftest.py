"""Fixtures that run the real service processes (the same ones `make run` starts)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from devstack.ports import free_ports
from devstack.stack import DEFAULT_PORTS, PROCESSES, Stack
from devstack.topics import ensure_topics
from kafka import KafkaConsumer
from rx_contracts import Envelope, decode
from rx_contracts.topics import all_topics

T = TypeVar("T")

REFERRAL = {
    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
    "patient": {"nhs_number": "9434765919", "postcode": "BS5 0AA"},
    "service_type": "urgent-community-response",
    "priority": "urgent",
}


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 30, every: float = 0.1
) -> T:
    """Bounded polling: return probe's first truthy result, or fail saying what never came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def stack_factory(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Stack]]:
    """Start the whole platform against a broker; stops everything at teardown and, if the
    test failed, prints every process's log tail."""
    stacks: list[Stack] = []

    def start(bootstrap_servers: str) -> Stack:
        ensure_topics(bootstrap_servers, all_topics())
        ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
        stack = Stack(
            tmp_path / f"stack{len(stacks)}",
            bootstrap_servers,
            ports=ports,
            group_prefix=f"e2e-{uuid.uuid4().hex[:8]}-",
        )
        stacks.append(stack)
        stack.start(timeout=90)
        return stack

    yield start
    failed = getattr(request.node, "rep_call", None)
    for stack in stacks:
        if failed is not None and failed.failed:
            for spec in PROCESSES:
                print(f"\n--- {spec.name} ---\n{stack.tail(spec.name)}")
        stack.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


GP = {"X-Organisation": "B81001", "X-Roles": "provider", "X-Practitioner": "G1234567"}
"""The referring practice's identity headers (development scheme)."""


def provider_headers(org: str, **extra: str) -> dict[str, str]:
    return {
        "X-Organisation": org,
        "X-Roles": "provider",
        "Idempotency-Key": str(uuid.uuid4()),
        **extra,
    }


def submit(stack: Stack, body: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {**GP, "Idempotency-Key": str(uuid.uuid4())}
    response = httpx.post(
        f"{stack.url('referrals')}/referrals", json=body or REFERRAL, headers=headers, timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()


OPS = {"X-Organisation": "OPS01", "X-Roles": "ops"}
"""An operations user's identity headers (the audit API is for ops only)."""


def audit_entries(stack: Stack, referral_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.url('audit')}/audit/entries",
        params={"referral_id": referral_id},
        headers=OPS,
        timeout=10,
    )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def timeline(stack: Stack, referral_id: str) -> list[str]:
    """Short event type names of the referral's timeline, in the order they happened."""
    response = httpx.get(
        f"{stack.url('audit')}/audit/referrals/{referral_id}/timeline", headers=OPS, timeout=10
    )
    response.raise_for_status()
    return [step["type"].rsplit(".", 2)[-2] for step in response.json()]


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
