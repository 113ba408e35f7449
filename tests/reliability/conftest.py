"""The fault tests: one stack of the real processes under a steady load of journeys, faults
injected, then the conservation check. ``RX_RELIABILITY=full`` (``make reliability``) runs
the long form: more load, more rounds, a 20 s broker outage. The stacks take the session's
shape (``--stack-db postgres --stack-replicas 2``: every service on PostgreSQL, two processes
per role)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from devstack.broker import Broker
from devstack.conservation import ConservationCheck, Databases, Report, verify_with_api
from devstack.load import Endpoints, LoadConfig, LoadDriver
from devstack.ports import free_ports
from devstack.providers import Tokens
from devstack.pytest_plugin import StackShape, stack_databases
from devstack.stack import DEFAULT_PORTS, Stack
from devstack.topics import ensure_topics
from rx_contracts.topics import all_topics

FULL = os.environ.get("RX_RELIABILITY") == "full"


@dataclass(frozen=True)
class Form:
    """How hard the fault tests push: the CI form is short, the full form long."""

    rate: float
    """Referrals per second."""
    between_faults: int
    """Referrals accepted before each fault and while it lasts."""
    rounds: int
    """Times every worker is killed."""
    broker_outage_s: float
    drain_timeout_s: float


FORM = (
    Form(rate=10, between_faults=40, rounds=3, broker_outage_s=20, drain_timeout_s=300)
    if FULL
    else Form(rate=5, between_faults=5, rounds=1, broker_outage_s=5, drain_timeout_s=150)
)
LOAD = LoadConfig(rate=FORM.rate, think=(0.1, 0.5))


@dataclass
class Rig:
    """A running stack on its own broker, the tokens of its demo clients, its conservation
    check, and every referral the API accepted so far (the module's tests share the stack,
    so the check holds each test to everything accepted before it too)."""

    broker: Broker
    stack: Stack
    tokens: Tokens
    check: ConservationCheck
    accepted: set[str] = field(default_factory=set)

    def driver(self, config: LoadConfig = LOAD) -> LoadDriver:
        endpoints = Endpoints(
            self.stack.url("referrals"), self.stack.url("issuer"), self.stack.bootstrap_servers
        )
        return LoadDriver(endpoints, config, tokens=self.tokens)

    def conserved(self, load: LoadDriver) -> Report:
        """Wait (bounded) for the journeys to finish and the pipeline to drain; fail with the
        report and the processes' log tails unless everything accepted is conserved."""
        started = time.monotonic()
        idle = load.wait_idle(FORM.drain_timeout_s)
        self.accepted |= set(load.accepted())
        report = self.check.wait(self.accepted, timeout=FORM.drain_timeout_s, ready=load.idle)
        print(f"journeys finished and the pipeline drained in {time.monotonic() - started:.1f} s")
        assert idle, f"journeys still under way after {FORM.drain_timeout_s}s\n{self.tails()}"
        assert report.ok, f"{report.summary()}\n{self.tails()}"
        assert not load.unanswered(), f"{len(load.unanswered())} POSTs never got a 201"
        assert not load.errors(), "\n".join(load.errors()[:10])
        assert self.stack.dead() == [], f"died: {self.stack.dead()}\n{self.tails()}"
        return report

    def tails(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{self.stack.tail(name, 15)}" for name in self.stack.names()
        )


def start_rig(
    broker: Broker,
    data_dir: Path,
    request: pytest.FixtureRequest,
    shape: StackShape,
) -> Rig:
    """Start the whole platform against a broker (no rate limits: the load is the point) in
    ``shape``; its databases go when ``request``'s fixture is torn down."""
    bootstrap_servers = broker.bootstrap_servers
    ensure_topics(bootstrap_servers, all_topics())
    ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
    tag = uuid.uuid4().hex[:8]
    stack = Stack(
        data_dir,
        bootstrap_servers,
        ports=ports,
        group_prefix=f"rel-{tag}-",
        databases=stack_databases(request, shape.db, f"rel_{tag}_"),
        replicas=shape.replicas,
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RX_RATE_LIMIT_PER_SECOND", "0")
        stack.start(timeout=90 * shape.replicas)
    tokens = Tokens(stack.url("issuer"))
    ops = {"Authorization": f"Bearer {tokens.get('ops', 'audit')}"}
    check = ConservationCheck(
        Databases.of(data_dir, stack.databases),
        verify_with_api(stack.url("audit"), ops),
        bootstrap_servers=bootstrap_servers,
    )
    return Rig(broker, stack, tokens, check)


@pytest.fixture(scope="module")
def rig(
    module_broker: Broker,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    stack_shape: StackShape,
) -> Iterator[Rig]:
    """One stack for a module's fault tests, on a broker of its own (a test may kill it):
    starting a stack costs more than the faults do."""
    rig = start_rig(module_broker, tmp_path_factory.mktemp("reliability"), request, stack_shape)
    try:
        yield rig
    finally:
        rig.stack.stop()
