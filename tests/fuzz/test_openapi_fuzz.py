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
names are never resolved). The audit's live stream is left out: a valid request to it never
ends (its parameters are tested in `services/audit/tests/test_stream.py`). Not here: the
referrals service's FHIR face (/fhir/R4), which describes itself with a CapabilityStatement
rather than OpenAPI and is checked against base R4 by the HAPI FHIR validator in its own tests,
and the portal, whose pages are HTML forms tested in a real browser.

Every check schemathesis has is on. A request the schema allows must be accepted; the few
answers the schema cannot rule out are listed in CONFIG with their reasons.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import patch

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from issuer.testing import TestIssuer

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("RX_FUZZ_EXAMPLES", "20"))

LOOKS_UP_STORED_DATA = (
    "a rule that compares the request with what is stored, which no schema can say: "
    "an amendment must change something; a locality's district must be in no other locality; "
    "localities, candidates and proposed localities must be in the directory"
)
COMPARES_FIELDS = (
    "a rule between two values, which JSON Schema cannot say: an opening-hours span starts "
    "before it ends and the day's spans do not overlap, a time window's from is not its to, "
    "rule ids are unique within a set, a replay window ends after it starts"
)

ATTACHED_FIRST = (
    "a document named in an answer or a message must have been uploaded to that referral "
    "first, which no schema can say"
)

EVENT_RANGE = (
    "a range of event numbers whose first is not after its last, which JSON Schema cannot say "
    "between two query parameters"
)

TOPIC_STAYS = (
    "a Subscription's criteria (its topic) cannot change on update, a rule against what is stored"
)

ISSUED_CURSOR = (
    "a paging cursor is only good if this service issued it; schemathesis draws query "
    "parameters from its own dictionaries as well as from the cursor generators below"
)

CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # Every request the schema allows is accepted, except where the schema cannot know
            # the answer: a referral or organisation that is not the caller's to act on (403),
            # an id that does not exist (404), a referral whose state does not allow the action
            # (409), an If-Match that is not its current version (412), and an Authorization
            # value schemathesis makes itself from the security scheme in some phases rather
            # than asking our auth hook: a bearer token no issuer signed (401). The check digit
            # of an NHS number, the content of a paging cursor and the bytes of an attachment
            # cannot be written in a schema either: their own generators below make good ones.
            "positive_data_acceptance": {"expected-statuses": ["2xx", 401, 403, 404, 409, 412]},
            # Our answers to a missing required header: 428 for If-Match (RFC 6585), 400 for
            # Idempotency-Key, 401 for the access token.
            "missing_required_header": {"expected-statuses": [400, 401, 428]},
            # Bad input is refused with any of schemathesis' usual answers, or 413 when it is
            # also larger than the service's body limit (checked before anything reads it).
            "negative_data_rejection": {
                "expected-statuses": [
                    *(400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429),
                    "5xx",
                ]
            },
            # Every status an operation answers is one its OpenAPI lists (on by default, as
            # every other check; named here because the contract depends on it).
            "status_code_conformance": {"enabled": True},
        },
        "operations": [
            {
                "include-operation-id": operation,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", 401, 403, 404, 409, 412, 422]
                    }
                },
            }
            for operation, _why in (
                ("worklist", ISSUED_CURSOR),
                ("entries", ISSUED_CURSOR),
                ("amend_referral", LOOKS_UP_STORED_DATA),
                ("provide_info", ATTACHED_FIRST),
                ("add_message", ATTACHED_FIRST),
                ("put_locality", LOOKS_UP_STORED_DATA),
                ("create_organisation", f"{LOOKS_UP_STORED_DATA}; {COMPARES_FIELDS}"),
                ("replace_organisation", f"{LOOKS_UP_STORED_DATA}; {COMPARES_FIELDS}"),
                ("create_rule_set", f"{LOOKS_UP_STORED_DATA}; {COMPARES_FIELDS}"),
                ("replay", f"{LOOKS_UP_STORED_DATA}; {COMPARES_FIELDS}"),
                ("read_events", EVENT_RANGE),
                ("fhir_subscription_events", EVENT_RANGE),
                ("update_fhir_subscription", TOPIC_STAYS),
            )
        ],
    }
)
"""Where a 422 may answer a request the schema allows, and why (see ``LOOKS_UP_STORED_DATA``
and ``COMPARES_FIELDS``); everywhere else it is a contract that says less than the server
enforces."""


def nhs_numbers() -> st.SearchStrategy[str]:
    """NHS numbers whose Modulus 11 check digit is right (what the schema cannot say)."""

    def with_check_digit(first: list[int]) -> str | None:
        check = 11 - sum(d * w for d, w in zip(first, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        return None if check == 10 else "".join(map(str, first)) + str(check)

    digits = st.lists(st.integers(0, 9), min_size=9, max_size=9)
    return digits.map(with_check_digit).filter(lambda n: n is not None)  # type: ignore[return-value]


def worklist_cursors() -> st.SearchStrategy[str]:
    """Cursors as the referrals worklist issues them: a due time and a referral id."""
    return st.builds(
        lambda due, rid: base64.urlsafe_b64encode(f"{due.isoformat()}|{rid}".encode()).decode(),
        st.datetimes(timezones=st.just(UTC)),
        st.uuids().map(str),
    )


def entry_cursors() -> st.SearchStrategy[str]:
    """Cursors as the audit log's entry pages issue them: a chain sequence."""
    return st.integers(0, 2**62).map(
        lambda n: base64.urlsafe_b64encode(f"after:{n}".encode()).decode()
    )


def documents(signature: bytes) -> st.SearchStrategy[bytes]:
    """A file that starts as its type's files do."""
    return st.binary(max_size=512).map(lambda rest: signature + rest)


schemathesis.openapi.format("nhs-number", nhs_numbers())
schemathesis.openapi.format("worklist-cursor", worklist_cursors())
schemathesis.openapi.format("entry-cursor", entry_cursors())
schemathesis.openapi.media_type("application/pdf", documents(b"%PDF-"))
schemathesis.openapi.media_type("image/png", documents(b"\x89PNG\r\n\x1a\n"))
schemathesis.openapi.media_type("image/jpeg", documents(b"\xff\xd8\xff"))
schemathesis.openapi.media_type(
    "text/plain",
    st.text(st.characters(blacklist_characters="\x00", codec="utf-8"), min_size=1).map(str.encode),
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


def public_dns(host: str, port: int) -> list[str]:
    """Every generated endpoint name resolves to one public address, as a real receiver's
    would; nothing connects to it (no delivery worker runs here)."""
    return ["1.1.1.1"]


def _notify_app(database_url: str) -> FastAPI:
    from notify.config import Settings
    from notify.entrypoints.api.app import create_app

    return create_app(Settings(database_url=database_url), resolver=public_dns)


SERVICES: dict[str, Callable[[str], FastAPI]] = {
    "referrals": _referrals_app,
    "routing": _routing_app,
    "audit": _audit_app,
    "notify": _notify_app,
}


with patch.dict(os.environ, {"RX_RATE_LIMIT_PER_SECOND": "0"}):
    # Every 401 a case draws makes schemathesis fetch a new token: the issuer's own limit on
    # token requests (per address, and all of these come from one) would refuse a long run.
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
            # A fresh token each time schemathesis refreshes (every 5 minutes): a long run
            # outlives one token's 15 minutes.
            response = ISSUER.request_token(client, service)
            assert response.status_code == 200, response.text
            token: str = response.json()["access_token"]
            return token

        def set(self, case: schemathesis.Case, data: str, context: object) -> None:
            # Replacing any Authorization the case was generated with, whatever its case: two
            # of them would reach the app, and it reads the first.
            headers = {
                k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
            }
            case.headers = {**headers, "Authorization": f"Bearer {data}"}


EXAMPLE_KEY = "5f0c6e4e-52b4-4b0e-9d7e-6f2f7d1c8a11"
"""The Idempotency-Key the API documents as its example."""


def with_key(case: schemathesis.Case) -> None:
    """Every well-formed Idempotency-Key a case carries is made unique, so that cases are new
    requests rather than replays; missing or malformed keys (schemathesis' own tests of the
    header) are left as they are."""
    headers = dict(case.headers or {})
    for name, value in headers.items():
        # A key is unique per logical request, which no schema can say: a generated key that
        # fits the pattern ("0", say) would otherwise come back with another body (422).
        if name.lower() == "idempotency-key" and (
            value == EXAMPLE_KEY or re.fullmatch(r"[ -~]{1,255}", str(value))
        ):
            headers[name] = str(uuid.uuid4())
    case.headers = headers


def consent_in_the_past(case: schemathesis.Case) -> None:
    """A well-formed time of consent later than now is moved into the past: "not later than
    now" is a rule against the clock, which no schema can say. Malformed ones are left as
    they are, for the checks that bad input is refused."""
    body = case.body
    consent = body.get("consent") if isinstance(body, dict) else None
    at = consent.get("recorded_at") if isinstance(consent, dict) else None
    if isinstance(at, str):
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            return
        if when.tzinfo is not None and when > datetime.now(UTC):
            consent["recorded_at"] = "2020-01-01T00:00:00Z"


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
    consent_in_the_past(case)
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
