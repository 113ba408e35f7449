"""Fixtures of the audit service's tests: a migrated database and events to record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from audit.adapters.checkpoint_keys import CheckpointKeys
from audit.bootstrap import bootstrap
from audit.config import Settings
from audit.domain.verification import Checkpoint, Verification
from audit.entrypoints.api.app import create_app
from audit.entrypoints.workers import record_event
from audit.service_layer import handlers
from audit.service_layer.unit_of_work import UnitOfWork, session_factory
from devstack.ports import free_ports
from rx_contracts import (
    Actor,
    Envelope,
    Priority,
    ProviderType,
    ReferralStatus,
    ReferralTransitioned,
    ServiceType,
    examples,
    wrap,
)
from rx_messaging.records import Record
from rx_web.settings import Environment
from rx_web.testing import use_dev_headers
from sqlalchemy.engine import Engine
from sqlmodel import Session

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def submitted(n: int, **changes: Any) -> Envelope:
    """The n-th referral's ReferralSubmitted, n minutes after T0."""
    return wrap(
        examples.referral_submitted(f"r-{n}", **changes),
        source="/services/referrals",
        time=T0 + timedelta(minutes=n),
        event_id=f"e-{n}",
    )


def record_all(
    engine: Engine, envelopes: list[Envelope], topic: str = "referrals.events.v1"
) -> None:
    """Append each envelope as if consumed from ``topic`` (offset = position in the list)."""
    with Session(engine) as session:
        for offset, envelope in enumerate(envelopes):
            record_event(session, envelope, Record(topic, 0, offset, None, None))
        session.commit()


def unit_of_work(engine: Engine) -> UnitOfWork:
    return UnitOfWork(session_factory(engine))


def verify_database(
    engine: Engine, checkpoints: Callable[[str], Sequence[Checkpoint]]
) -> Verification:
    """Verify the chain in ``engine``'s database against ``checkpoints(chain_id)``."""
    return handlers.verify_chain(checkpoints, unit_of_work(engine))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'audit.db'}",
        checkpoint_keys_file=tmp_path / "checkpoint-keys.json",
    )


@pytest.fixture
def checkpoint_keys(settings: Settings) -> CheckpointKeys:
    """The service's checkpoint keys: a key file of the test's own, made as in development."""
    keys = CheckpointKeys(settings.checkpoint_keys_file, Environment.DEVELOPMENT)
    keys.signer()
    return keys


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = bootstrap(settings).engine
    yield engine
    engine.dispose()


OPS = {"X-Organisation": "OPS01", "X-Roles": "ops"}
"""Identity headers of an operations user (development scheme)."""


@pytest.fixture
def live_api(settings: Settings) -> Iterator[str]:
    """The audit API served by a real uvicorn on a free port (streams need a real server);
    yields its base URL."""
    app = create_app(settings)
    [port] = free_ports(1)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            log_config=None,  # as rx_web.server: no dictConfig that cuts uvicorn off the root
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the audit API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


def transitioned(
    model: type[ReferralTransitioned], referral_id: str, **changes: Any
) -> ReferralTransitioned:
    """A later event of a referral from B81001 held by rapid response team RXA01."""
    fields: dict[str, Any] = {
        "referral_id": referral_id,
        "sequence": 3,
        "version": 3,
        "actor": Actor(organisation="RXA01", practitioner="P1"),
        "status": ReferralStatus.ACCEPTED,
        "referrer_org": "B81001",
        "assigned_org": "RXA01",
        "provider_type": ProviderType.RAPID_RESPONSE,
        "service_type": ServiceType.URGENT_COMMUNITY_RESPONSE,
        "priority": Priority.URGENT,
        "occurred_at": T0,
    }
    return model.model_validate(fields | changes)


@pytest.fixture(autouse=True)
def _dev_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's own tests call its API with the development identity headers (tokens
    are tested in tests/security)."""
    use_dev_headers(monkeypatch)
