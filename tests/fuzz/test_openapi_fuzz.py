"""Property-based fuzzing of every service's HTTP API from its own OpenAPI document
(schemathesis): thousands of generated requests, valid and invalid, must get no server error,
only documented status codes, responses matching their schemas, and invalid input refused.

The short form runs in `make test` (RX_FUZZ_EXAMPLES per operation, default 20); `make fuzz`
runs the long form. Each service runs in-process (its ASGI app, lifespan and all) on a fresh
SQLite database, checking real tokens from an in-process issuer. Callers are chosen so the
handlers behind the checks are reached: the referring practice's provider system for referrals
(object-level checks pass on what it creates), the `admin` client for routing (it may change
the seeded demo directory, rules and policies, and read decisions and replay), `ops` for
audit, and the referring practice again for notify (it manages its own subscriptions; endpoint
names are never resolved). The audit's live stream is left out: a valid request to it never ends (its parameters
are tested in `services/audit/tests/test_stream.py`).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from unittest.mock import patch

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from issuer.testing import TestIssuer

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("RX_FUZZ_EXAMPLES", "20"))

CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # A request can match the schema and still break a business rule the schema cannot
            # express (an NHS number's check digit, a stale If-Match, a cursor we never issued,
            # a document whose bytes are not what its Content-Type says).
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 412, 415, 422, 429]
            },
            # Our answers to a missing required header: 428 for If-Match (RFC 6585), 400 for
            # Idempotency-Key, 401 for identity, 422 otherwise.
            "missing_required_header": {"expected-statuses": [400, 401, 406, 422, 428]},
        }
    }
)


def _referrals_app(database_url: str) -> FastAPI:
    from referrals.config import Settings
    from referrals.entrypoints.api.app import create_app

    return create_app(Settings(database_url=database_url))


def _routing_app(database_url: str) -> FastAPI:
    from routing.bootstrap import bootstrap
    from routing.config import Settings
    from routing.entrypoints.api.app import create_app
    from routing.entrypoints.seed import seed_demo

    settings = Settings(database_url=database_url)
    engine = bootstrap(settings).engine
    seed_demo(engine)  # localities, organisations, rules and policies to read and change
    engine.dispose()
    return create_app(settings)


def _audit_app(database_url: str) -> FastAPI:
    from audit.config import Settings
    from audit.entrypoints.api.app import create_app

    return create_app(Settings(database_url=database_url))


def no_dns(host: str, port: int) -> list[str]:
    """Generated endpoint names are never looked up: a name resolves to nothing here."""
    raise OSError(f"{host} is not resolved in the fuzz tests")


def _notify_app(database_url: str) -> FastAPI:
    from notify.config import Settings
    from notify.entrypoints.api.app import create_app

    return create_app(Settings(database_url=database_url), resolver=no_dns)


SERVICES: dict[str, Callable[[str], FastAPI]] = {
    "referrals": _referrals_app,
    "routing": _routing_app,
    "audit": _audit_app,
    "notify": _notify_app,
}


ISSUER = TestIssuer(Path(tempfile.mkdtemp(prefix="rx-fuzz-issuer-")))
"""Real tokens, checked by the apps as in production (an in-process issuer)."""


def load(service: str) -> schemathesis.BaseSchema:
    """The service's schema from its own app, bound to that app on a fresh database. The app
    object is cheap to build; its database and container come at the first request. Rate
    limits are off for it: thousands of requests from one client are the point here."""
    directory = tempfile.mkdtemp(prefix=f"rx-fuzz-{service}-")
    with patch.dict(os.environ, {"RX_RATE_LIMIT_PER_SECOND": "0"}):
        app = SERVICES[service](f"sqlite:///{directory}/{service}.db")
    ISSUER.attach(app)
    schema = schemathesis.openapi.from_dict(app.openapi(), config=CONFIG)
    schema.app = app
    authenticate(schema, service, CALLERS[service])
    return schema


CALLERS = {"referrals": "b81001", "routing": "admin", "audit": "ops", "notify": "b81001"}
"""Whose token each service's cases carry (see the module's docstring)."""


def authenticate(schema: schemathesis.BaseSchema, service: str, client: str) -> None:
    """Every case carries the client's token, through schemathesis' own auth hook: so it knows
    which credentials are real, and its checks that bad ones are refused stay honest."""

    @schema.auth()
    class Token:
        def get(self, case: schemathesis.Case, context: object) -> str:
            return ISSUER.token(client, service)

        def set(self, case: schemathesis.Case, data: str, context: object) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


EXAMPLE_KEY = "5f0c6e4e-52b4-4b0e-9d7e-6f2f7d1c8a11"
"""The Idempotency-Key the API documents as its example."""


def with_key(case: schemathesis.Case) -> None:
    """Schemathesis generates the required Idempotency-Key itself (and leaves it out, or makes
    it invalid, on purpose); only the documented example, which every example-based case would
    share, is made unique so that those cases are new requests rather than replays."""
    headers = dict(case.headers or {})
    for name, value in headers.items():
        if name.lower() == "idempotency-key" and value == EXAMPLE_KEY:
            headers[name] = str(uuid.uuid4())
    case.headers = headers


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("RX_FUZZ_RANDOM") is None,  # CI: the same cases every run
    suppress_health_check=list(HealthCheck),
    database=None,
)

referrals = load("referrals")
routing = load("routing")
audit = load("audit").exclude(path="/audit/stream")
notify = load("notify")


@referrals.parametrize()
@FUZZ_SETTINGS
def test_referrals_api(case: schemathesis.Case) -> None:
    with_key(case)
    case.call_and_validate()


@routing.parametrize()
@FUZZ_SETTINGS
def test_routing_api(case: schemathesis.Case) -> None:
    case.call_and_validate()


@audit.parametrize()
@FUZZ_SETTINGS
def test_audit_api(case: schemathesis.Case) -> None:
    case.call_and_validate()


@notify.parametrize()
@FUZZ_SETTINGS
def test_notify_api(case: schemathesis.Case) -> None:
    with_key(case)
    case.call_and_validate()


class ReferralJourneys(referrals.as_state_machine()):  # type: ignore[misc]
    """Walks the OpenAPI links: submit, read, amend with the ETag, cancel, re-route…"""

    def before_call(self, case: schemathesis.Case) -> None:
        with_key(case)


TestReferralJourneys = ReferralJourneys.TestCase
TestReferralJourneys.settings = settings(
    FUZZ_SETTINGS, max_examples=max(EXAMPLES // 2, 5), stateful_step_count=8
)
