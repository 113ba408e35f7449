"""Fixtures that run the real service processes (the same ones `make run` starts), in the
shape ``--stack-db`` / ``--stack-replicas`` choose (SQLite, one process per role by default)."""

from __future__ import annotations

import contextlib
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
from devstack.topics import ensure_topics, read_from_start
from issuer.clients import demo_secret
from kafka.consumer.fetcher import ConsumerRecord
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


@contextlib.contextmanager
def running_stack(
    request: pytest.FixtureRequest,
    data_dir: Path,
    bootstrap_servers: str,
    group_prefix: str,
    timeout: float = 90,
) -> Iterator[Stack]:
    """A started stack in the session's shape (``--stack-db`` / ``--stack-replicas``), for a
    module's fixture or the shared stack; stopped afterwards, also after a start that failed
    half-way.
    ``timeout``: for each process per role."""
    shape: StackShape = request.getfixturevalue("stack_shape")
    stack = shaped_stack(request, data_dir, bootstrap_servers, shape, group_prefix)
    try:
        stack.start(timeout=timeout * stack.replicas)
        yield stack
    finally:
        stack.stop()


class SharedStack:
    """One stack for the journey tests that need nothing special of a stack (each uses its own
    referrals): started when the first of them asks, stopped after the last one, so the
    journeys do not each pay for starting a platform. Tests that change the platform's
    settings, kill its processes or want its broker to themselves start their own."""

    def __init__(
        self, request: pytest.FixtureRequest, bootstrap_servers: str, data_dir: Callable[[], Path]
    ) -> None:
        self._request = request
        self._bootstrap_servers = bootstrap_servers
        self._data_dir = data_dir
        self._running = contextlib.ExitStack()
        self._stack: Stack | None = None

    def get(self) -> Stack:
        if self._stack is None:
            self._stack = self._running.enter_context(
                running_stack(self._request, self._data_dir(), self._bootstrap_servers, "shared-")
            )
        return self._stack

    @property
    def running(self) -> Stack | None:
        return self._stack

    def close(self) -> None:
        self._stack = None
        self._running.close()


_SHARED = pytest.StashKey[SharedStack]()


@pytest.fixture(scope="session")
def _shared_stacks(
    request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedStack]:
    shared = SharedStack(request, kafka_bootstrap, lambda: tmp_path_factory.mktemp("shared"))
    request.config.stash[_SHARED] = shared
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
def shared_stack(_shared_stacks: SharedStack) -> Stack:
    """The running shared stack (:class:`SharedStack`) on ``kafka_bootstrap``, in the session's
    shape."""
    return _shared_stacks.get()


def _on_shared_stack(item: pytest.Item) -> bool:
    # The fixture behind it, not its name: a module may give ``shared_stack`` its own stack.
    return "_shared_stacks" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the shared stack run one after another (in their order), where the first
    of them was, so the stack runs only while they do."""
    users = [item for item in items if _on_shared_stack(item)]
    if users:
        first = items.index(users[0])
        others = [item for item in items if not _on_shared_stack(item)]
        items[:] = others[:first] + users + others[first:]


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After a failed test on the shared stack, print every process's log tail; stop the
    stack once no test after this one uses it."""
    shared = item.config.stash.get(_SHARED, None)
    if shared is None or not _on_shared_stack(item):
        return
    failed = getattr(item, "rep_call", None)
    if shared.running is not None and failed is not None and failed.failed:
        print_tails(shared.running)
    if nextitem is None or not _on_shared_stack(nextitem):
        shared.close()


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
    """Every event on ``topic`` keyed ``key``, read from the start, once ``until`` holds for
    what was read (or the timeout passes), and a second longer, so a duplicate arriving just
    behind would be caught."""
    wanted = key.encode()

    def keyed(records: list[ConsumerRecord]) -> list[Envelope]:
        return [decode(r.key, r.value, list(r.headers)) for r in records if r.key == wanted]

    return keyed(
        read_from_start(
            bootstrap_servers, [topic], lambda seen: until(keyed(seen)), timeout=timeout
        )
    )
