"""Property-based fuzzing of every service's HTTP API from its own OpenAPI document
(schemathesis): thousands of generated requests, valid and invalid, must get no server error,
only documented status codes, responses matching their schemas, and invalid input refused.

The short form runs in `make test` (RX_FUZZ_EXAMPLES per operation, default 20); `make fuzz`
runs the long form. Each service runs in-process (its ASGI app, lifespan and all) on a fresh
SQLite database; callers use the development identity with provider and ops roles, so object-
level checks are passed and the handlers behind them are reached.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("RX_FUZZ_EXAMPLES", "20"))

CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # A request can match the schema and still break a business rule the schema cannot
            # express (an NHS number's check digit, a stale If-Match, a cursor we never issued).
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 412, 422, 429]
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


SERVICES: dict[str, Callable[[str], FastAPI]] = {"referrals": _referrals_app}


def load(service: str) -> schemathesis.BaseSchema:
    """The service's schema from its own app, bound to that app on a fresh database. The app
    object is cheap to build; its database and container come at the first request."""
    directory = tempfile.mkdtemp(prefix=f"rx-fuzz-{service}-")
    app = SERVICES[service](f"sqlite:///{directory}/{service}.db")
    schema = schemathesis.openapi.from_dict(app.openapi(), config=CONFIG)
    schema.app = app
    return schema


def identity() -> dict[str, str]:
    return {
        "X-Organisation": "B81001",
        "X-Roles": "provider,ops",
        "Idempotency-Key": str(uuid.uuid4()),
    }


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("RX_FUZZ_RANDOM") is None,  # CI: the same cases every run
    suppress_health_check=list(HealthCheck),
    database=None,
)

referrals = load("referrals")


@referrals.parametrize()
@FUZZ_SETTINGS
def test_referrals_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=identity())


class ReferralJourneys(referrals.as_state_machine()):  # type: ignore[misc]
    """Walks the OpenAPI links: submit, read, amend with the ETag, cancel, re-route…"""

    def before_call(self, case: schemathesis.Case) -> None:
        case.headers = {**(case.headers or {}), **identity()}


TestReferralJourneys = ReferralJourneys.TestCase
TestReferralJourneys.settings = settings(
    FUZZ_SETTINGS, max_examples=max(EXAMPLES // 2, 5), stateful_step_count=8
)
