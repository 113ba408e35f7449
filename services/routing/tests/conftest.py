"""Fixtures of the routing service's tests: a migrated, seeded database and a clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from routing.bootstrap import Container, bootstrap
from routing.config import Settings
from routing.entrypoints.seed import seed_demo
from rx_contracts import Envelope
from rx_web.testing import use_dev_headers
from sqlmodel import Session

from .support import ManualClock, consume


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def container(database_url: str, clock: ManualClock) -> Iterator[Container]:
    """On SQLite and on PostgreSQL (``database_url`` is parametrized)."""
    container = bootstrap(Settings(database_url=database_url), clock=clock)
    seed_demo(container.engine)
    yield container
    container.engine.dispose()


@pytest.fixture
def deliver(container: Container) -> Callable[[Envelope], None]:
    """Apply one event as the consumer does (its own transaction), at the clock's time."""

    def apply(envelope: Envelope) -> None:
        with Session(container.engine) as session:
            consume(container, session, envelope)
            session.commit()

    return apply


@pytest.fixture(autouse=True)
def _dev_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's own tests call its API with the development identity headers (tokens
    are tested in tests/security)."""
    use_dev_headers(monkeypatch)
