"""The notify API in-process (development identity headers), on a real SQLite database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from notify.bootstrap import bootstrap
from notify.config import Settings
from notify.domain.topics import Topic
from notify.entrypoints.api.app import create_app
from notify.entrypoints.api.fhir_subscription import FILTER_CRITERIA, PAYLOAD_CONTENT, SECRET
from notify.service_layer.ingest import ingest
from sqlmodel import Session

from .journeys import GP, TEAM, Journey

ADDRESSES = {
    "ehr.example.org": ["93.184.216.34"],
    "intranet.example.org": ["10.1.2.3"],
    "sneaky.example.org": ["93.184.216.34", "169.254.169.254"],
}


def stub_resolver(host: str, port: int) -> list[str]:
    if host not in ADDRESSES:
        raise OSError(f"unknown host {host}")
    return ADDRESSES[host]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'notify.db'}")
    container = bootstrap(settings, resolver=stub_resolver)
    with TestClient(create_app(container=container)) as test_client:
        yield test_client
    container.engine.dispose()


def org(code: str, roles: str = "provider", **extra: str) -> dict[str, str]:
    return {"X-Organisation": code, "X-Roles": roles, **extra}


def post(client: TestClient, path: str, body: Any, who: dict[str, str]) -> Any:
    return client.post(path, json=body, headers={**who, "Idempotency-Key": str(uuid.uuid4())})


WEBHOOK = {"topic": "referrals-sent", "endpoint": "https://ehr.example.org/hook"}


def test_create_read_list_and_delete_a_webhook(client: TestClient) -> None:
    created = post(client, "/subscriptions", {**WEBHOOK, "content": "full-resource"}, org(GP))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["health"]["status"] == "active" and body["organisation"] == GP
    sid = body["id"]
    read = client.get(f"/subscriptions/{sid}", headers=org(GP))
    assert read.status_code == 200 and "secret" not in read.json()
    assert read.headers["ETag"] == '"1"'
    assert [s["id"] for s in client.get("/subscriptions", headers=org(GP)).json()["items"]] == [sid]
    assert client.get("/subscriptions", headers=org(TEAM)).json()["items"] == []
    assert client.get(f"/subscriptions/{sid}", headers=org(TEAM)).status_code == 404
    ops = client.get("/subscriptions", headers=org("RX0PS", "ops")).json()["items"]
    assert [s["id"] for s in ops] == [sid]
    assert client.delete(f"/subscriptions/{sid}", headers=org(TEAM)).status_code == 404
    assert client.delete(f"/subscriptions/{sid}", headers=org(GP)).status_code == 204
    assert client.get(f"/subscriptions/{sid}", headers=org(GP)).status_code == 404


@pytest.mark.parametrize(
    ("endpoint", "rule"),
    [
        ("http://ehr.example.org/hook", "https"),
        ("https://10.0.0.7/hook", "address"),
        ("https://169.254.169.254/latest/meta-data", "address"),
        ("https://[::ffff:192.168.1.1]/hook", "address"),
        ("https://127.0.0.1/hook", "address"),
        ("https://localhost/hook", "address"),
        ("https://intranet.example.org/hook", "address"),
        ("https://sneaky.example.org/hook", "address"),
        ("https://nowhere.example.org/hook", "unresolvable"),
        ("https://user:pw@ehr.example.org/hook", "no_credentials"),
    ],
)
def test_endpoints_that_could_reach_inside_are_refused(
    client: TestClient, endpoint: str, rule: str
) -> None:
    answer = post(client, "/subscriptions", {**WEBHOOK, "endpoint": endpoint}, org(GP))
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "endpoint"
    assert answer.json()["errors"][0]["rule"] == rule


def test_only_provider_systems_subscribe(client: TestClient) -> None:
    assert post(client, "/subscriptions", WEBHOOK, org("RX0PS", "ops")).status_code == 403


def test_a_retried_create_with_the_same_key_makes_one_subscription(client: TestClient) -> None:
    headers = {**org(GP), "Idempotency-Key": "same-key"}
    first = client.post("/subscriptions", json=WEBHOOK, headers=headers)
    again = client.post("/subscriptions", json=WEBHOOK, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(client.get("/subscriptions", headers=org(GP)).json()["items"]) == 1


def test_update_needs_the_current_version(client: TestClient) -> None:
    sid = post(client, "/subscriptions", WEBHOOK, org(GP)).json()["id"]
    change = {"filters": {"priority": ["urgent"]}}
    assert client.patch(f"/subscriptions/{sid}", json=change, headers=org(GP)).status_code == 428
    stale = client.patch(
        f"/subscriptions/{sid}", json=change, headers=org(GP, **{"If-Match": '"7"'})
    )
    assert stale.status_code == 412
    done = client.patch(
        f"/subscriptions/{sid}", json=change, headers=org(GP, **{"If-Match": '"1"'})
    )
    assert done.status_code == 200, done.text
    assert done.json()["filters"]["priority"] == ["urgent"] and done.headers["ETag"] == '"2"'


def test_rotation_returns_a_new_secret(client: TestClient) -> None:
    created = post(client, "/subscriptions", WEBHOOK, org(GP)).json()
    rotated = post(client, f"/subscriptions/{created['id']}/secret", {}, org(GP))
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != created["secret"]


def test_events_can_be_fetched_by_number_and_resent(client: TestClient) -> None:
    sid = post(client, "/subscriptions", {**WEBHOOK, "content": "full-resource"}, org(GP)).json()[
        "id"
    ]
    j = Journey()
    engine = client.app.state.container.engine  # type: ignore[attr-defined]
    for envelope in (j.submitted(), j.routed(), j.accepted()):
        with Session(engine) as session:
            ingest(session, envelope)
            session.commit()
    page = client.get(f"/subscriptions/{sid}/events", params={"since": 2}, headers=org(GP)).json()
    assert [e["eventnumber"] for e in page["items"]] == [2, 3]
    assert [e["event"] for e in page["items"]] == ["routed", "accepted"]
    assert page["items"][1]["data"]["referral"]["assigned_org"] == TEAM
    assert page["items"][1]["subject"] == j.id
    assert (
        post(client, f"/subscriptions/{sid}/resend", {"from_event_number": 9}, org(GP)).status_code
        == 422
    )
    resent = post(client, f"/subscriptions/{sid}/resend", {"from_event_number": 2}, org(GP))
    assert resent.status_code == 200 and resent.json()["health"]["delivered_through"] == 0


# ---- FHIR ----------------------------------------------------------------------------------

FHIR_SUBSCRIPTION = {
    "resourceType": "Subscription",
    "status": "requested",
    "reason": "offers",
    "criteria": Topic.OFFERED.url,
    "_criteria": {"extension": [{"url": FILTER_CRITERIA, "valueString": "Task?priority=urgent"}]},
    "channel": {
        "type": "rest-hook",
        "endpoint": "https://ehr.example.org/fhir",
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "full-resource"}]},
        "header": ["Authorization: Bearer receiver-token"],
    },
}


def test_a_fhir_subscription_round_trips(client: TestClient) -> None:
    created = client.post("/fhir/R4/Subscription", json=FHIR_SUBSCRIPTION, headers=org(TEAM))
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/fhir+json")
    resource = created.json()
    assert resource["status"] == "requested"
    assert resource["extension"][0]["url"] == SECRET
    sid = resource["id"]
    read = client.get(f"/fhir/R4/Subscription/{sid}", headers=org(TEAM)).json()
    assert read["criteria"] == Topic.OFFERED.url
    assert read["_criteria"]["extension"][0]["valueString"] == "Task?priority=urgent"
    assert read["channel"]["header"] == ["Authorization: ***"]  # values never shown again
    assert "extension" not in read
    status = client.get(f"/fhir/R4/Subscription/{sid}/$status", headers=org(TEAM)).json()
    parameters = status["entry"][0]["resource"]["parameter"]
    assert {p["name"]: p.get("valueCode") for p in parameters}["type"] == "query-status"
    search = client.get("/fhir/R4/Subscription", headers=org(TEAM)).json()
    assert search["total"] == 1
    off = {**read, "status": "off"}
    updated = client.put(f"/fhir/R4/Subscription/{sid}", json=off, headers=org(TEAM))
    assert updated.status_code == 200, updated.text
    assert updated.json()["status"] == "off"
    assert client.delete(f"/fhir/R4/Subscription/{sid}", headers=org(TEAM)).status_code == 204


def test_fhir_errors_are_operation_outcomes(client: TestClient) -> None:
    unknown = {**FHIR_SUBSCRIPTION, "criteria": "http://example.org/SubscriptionTopic/other"}
    answer = client.post("/fhir/R4/Subscription", json=unknown, headers=org(TEAM))
    assert answer.status_code == 422
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["criteria"]
    missing = client.get("/fhir/R4/Subscription/nope", headers=org(TEAM))
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    malformed = client.post(
        "/fhir/R4/Subscription", json={"resourceType": "Patient"}, headers=org(TEAM)
    )
    assert malformed.status_code == 422 and malformed.json()["resourceType"] == "OperationOutcome"


def test_fhir_events_returns_a_query_event_bundle(client: TestClient) -> None:
    sid = client.post("/fhir/R4/Subscription", json=FHIR_SUBSCRIPTION, headers=org(TEAM)).json()[
        "id"
    ]
    j = Journey()
    engine = client.app.state.container.engine  # type: ignore[attr-defined]
    for envelope in (j.submitted(), j.routed(TEAM), j.accepted()):
        with Session(engine) as session:
            ingest(session, envelope)
            session.commit()
    bundle = client.get(
        f"/fhir/R4/Subscription/{sid}/$events",
        params={"eventsSinceNumber": 1},
        headers=org(TEAM),
    ).json()
    assert bundle["type"] == "history"
    status = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
    assert status["type"]["valueCode"] == "query-event"
    assert status["events-since-subscription-start"]["valueString"] == "2"
    resources = [e["resource"] for e in bundle["entry"][1:]]
    requests = [r for r in resources if r["resourceType"] == "ServiceRequest"]
    tasks = [r for r in resources if r["resourceType"] == "Task"]
    assert [t["businessStatus"]["coding"][0]["code"] for t in tasks] == ["routed", "accepted"]
    assert tasks[1]["status"] == "accepted" and tasks[1]["owner"]["identifier"]["value"] == TEAM
    assert {r["id"] for r in requests} == {j.id}
    assert requests[0]["subject"] == {"reference": f"Patient/{j.id}"}  # by reference only
    parameters = bundle["entry"][0]["resource"]["parameter"]
    events = [p for p in parameters if p["name"] == "notification-event"]
    focus = next(p for p in events[0]["part"] if p["name"] == "focus")
    assert focus["valueReference"]["reference"].endswith(f"/ServiceRequest/{j.id}")


# ---- the answers to a missing or malformed If-Match / Idempotency-Key ------------------------

KEY_PATTERN = "String should match pattern '^[ -~]{1,255}$'"
ETAG_PATTERN = "String should match pattern '^\\s*(W/)?\"?[0-9]{1,18}\"?\\s*$'"
KEY_REQUIRED = (
    400,
    "Idempotency-Key required",
    "every POST needs an Idempotency-Key header, unique per logical request",
)
IF_MATCH_REQUIRED = (
    428,
    "Precondition required",
    "send If-Match with the ETag of the version you read (RFC 6585)",
)
BAD_KEY = ("header.idempotency-key", "string_pattern_mismatch", KEY_PATTERN)
BAD_ETAG = ("header.if-match", "string_pattern_mismatch", ETAG_PATTERN)
BAD_ID = (
    "path.subscription_id",
    "string_pattern_mismatch",
    "String should match pattern '^[A-Za-z0-9-]+$'",
)
NO_BODY = ("", "missing", "Field required")
EXTRA = ("nope", "extra_forbidden", "Extra inputs are not permitted")


def invalid(*errors: tuple[str, str, str]) -> tuple[int, str, str, list[dict[str, str]]]:
    """The 422 FastAPI's validation gives, as problem+json: each field in the order checked."""
    detail = "; ".join(f"{field or 'body'}: {message}" for field, _, message in errors)
    listed = [{"field": f, "rule": r, "message": m} for f, r, m in errors]
    return 422, "Invalid request", detail, listed


@pytest.mark.parametrize(
    ("method", "action", "headers", "body", "expected"),
    [
        ("POST", "", {}, WEBHOOK, KEY_REQUIRED),
        ("POST", "", {"Idempotency-Key": "k" * 256}, WEBHOOK, invalid(BAD_KEY)),
        ("POST", "", {"Idempotency-Key": "tab\there"}, WEBHOOK, invalid(BAD_KEY)),
        ("POST", "", {"Idempotency-Key": ""}, WEBHOOK, invalid(BAD_KEY)),
        ("POST", "", {}, {**WEBHOOK, "nope": 1}, KEY_REQUIRED),
        ("POST", "", {}, None, KEY_REQUIRED),
        ("POST", "", {"Idempotency-Key": "tab\t"}, {**WEBHOOK, "nope": 1}, invalid(BAD_KEY, EXTRA)),
        (
            "POST",
            "",
            {"Idempotency-Key": b"\xe9"},
            {"endpoint": 3},
            invalid(
                BAD_KEY,
                ("topic", "missing", "Field required"),
                ("endpoint", "string_type", "Input should be a valid string"),
            ),
        ),
        ("POST", "/secret", {}, {}, KEY_REQUIRED),
        ("POST", "/secret", {"Idempotency-Key": "k" * 256}, {}, invalid(BAD_KEY)),
        (
            "POST",
            "/secret",
            {"Idempotency-Key": "k" * 256},
            {"overlap_seconds": -1},
            invalid(
                BAD_KEY,
                (
                    "overlap_seconds",
                    "greater_than_equal",
                    "Input should be greater than or equal to 0",
                ),
            ),
        ),
        ("POST", "/resend", {}, {"from_event_number": 0}, KEY_REQUIRED),
        ("POST", "/resend", {"Idempotency-Key": ""}, None, invalid(BAD_KEY, NO_BODY)),
        ("PATCH", "", {}, {"status": "off"}, IF_MATCH_REQUIRED),
        ("PATCH", "", {"If-Match": '"abc"'}, {"status": "off"}, invalid(BAD_ETAG)),
        ("PATCH", "", {"If-Match": '"1" x'}, {"status": "off"}, invalid(BAD_ETAG)),
        ("PATCH", "", {"If-Match": "1\x1c"}, {"status": "off"}, invalid(BAD_ETAG)),
        ("PATCH", "", {}, {"nope": 1}, IF_MATCH_REQUIRED),
        ("PATCH", "", {"If-Match": "x"}, {"nope": 1}, invalid(BAD_ETAG, EXTRA)),
        ("PATCH", "", {"If-Match": "x"}, None, invalid(BAD_ETAG, NO_BODY)),
        ("PATCH", "_", {}, {"nope": 1}, IF_MATCH_REQUIRED),
        ("PATCH", "_", {"If-Match": "x"}, {"nope": 1}, invalid(BAD_ETAG, BAD_ID, EXTRA)),
        ("PATCH", "_", {"If-Match": '"1"'}, {"nope": 1}, invalid(BAD_ID, EXTRA)),
    ],
)
def test_a_missing_or_malformed_if_match_or_idempotency_key_gets_its_answer(
    client: TestClient,
    method: str,
    action: str,
    headers: dict[str, Any],
    body: Any,
    expected: tuple[Any, ...],
) -> None:
    """Each answer whole: its status, title and detail, and for a 422 every field broken in
    the order the request is checked (the headers, then the path, then the body), a missing
    header's answer (400, 428) winning over anything else wrong with the request."""
    sid = post(client, "/subscriptions", WEBHOOK, org(GP)).json()["id"]
    path = "/subscriptions"
    if method == "PATCH" or action != "":
        path += f"/{sid}{action}" if action != "_" else "/not_an_id"
    answer = client.request(method, path, json=body, headers={**org(GP), **headers})
    status, title, detail, *errors = expected
    want = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    want |= {"instance": path} | ({"errors": errors[0]} if errors else {})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json() == want
    (unchanged,) = client.get("/subscriptions", headers=org(GP)).json()["items"]
    assert unchanged["version"] == 1, "nothing changed"


@pytest.mark.parametrize(
    ("method", "action", "headers"),
    [
        ("POST", "", {"Idempotency-Key": "tab\t"}),
        ("POST", "", {}),
        ("POST", "/secret", {}),
        ("PATCH", "", {}),
        ("PATCH", "", {"If-Match": "x"}),
    ],
)
def test_without_an_identity_a_write_is_401_whatever_its_headers(
    client: TestClient, method: str, action: str, headers: dict[str, str]
) -> None:
    sid = post(client, "/subscriptions", WEBHOOK, org(GP)).json()["id"]
    path = f"/subscriptions/{sid}{action}" if method == "PATCH" or action else "/subscriptions"
    answer = client.request(method, path, json={"nope": 1}, headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["title"] == "Unauthenticated"


@pytest.mark.parametrize("etag", ['"1"', "1", 'W/"1"', ' W/"1" ', '"1', "\t1\t"])
def test_if_match_takes_the_etag_weak_bare_or_padded(client: TestClient, etag: Any) -> None:
    sid = post(client, "/subscriptions", WEBHOOK, org(GP)).json()["id"]
    change = {"status": "off"}
    done = client.patch(f"/subscriptions/{sid}", json=change, headers=org(GP, **{"If-Match": etag}))
    assert done.status_code == 200, done.text
    assert done.headers["ETag"] == '"2"'
    stale = client.patch(
        f"/subscriptions/{sid}", json=change, headers=org(GP, **{"If-Match": etag})
    )
    assert stale.status_code == 412, stale.text


def outcome(*errors: tuple[str, str, str]) -> dict[str, Any]:
    """The OperationOutcome a FHIR route gives for FastAPI's validation errors, in order."""
    issue = {
        "severity": "error",
        "code": "invalid",
        "diagnostics": "; ".join(f"{f or 'body'}: {m}" for f, _, m in errors),
        "expression": [f for f, _, _ in errors],
    }
    return {"resourceType": "OperationOutcome", "issue": [issue]}


NOT_A_STRING = ("status", "string_type", "Input should be a valid string")


@pytest.mark.parametrize(
    ("method", "sid", "headers", "body", "expected"),
    [
        ("POST", "", {"Idempotency-Key": "tab\t"}, {}, outcome(BAD_KEY)),
        (
            "POST",
            "",
            {"Idempotency-Key": ""},
            {"resourceType": "Patient"},
            outcome(
                BAD_KEY,
                ("resourceType", "", "String should match pattern '^Subscription$'"),
            ),
        ),
        ("POST", "", {"Idempotency-Key": "k" * 256}, {"status": 3}, outcome(BAD_KEY, NOT_A_STRING)),
        ("PUT", "ours", {"If-Match": "x"}, {}, outcome(BAD_ETAG)),
        ("PUT", "ours", {"If-Match": "1\x1c"}, {}, outcome(BAD_ETAG)),
        ("PUT", "ours", {"If-Match": "x"}, {"status": 3}, outcome(BAD_ETAG, NOT_A_STRING)),
        ("PUT", "a_b", {"If-Match": "x"}, {"status": 3}, outcome(BAD_ID, BAD_ETAG, NOT_A_STRING)),
        ("PUT", "a_b", {"If-Match": "x"}, None, outcome(BAD_ID, BAD_ETAG, NO_BODY)),
    ],
)
def test_a_fhir_write_with_a_malformed_if_match_or_idempotency_key_gets_an_outcome(
    client: TestClient,
    method: str,
    sid: str,
    headers: dict[str, str],
    body: Any,
    expected: dict[str, Any],
) -> None:
    """Both headers are optional on the FHIR routes; a malformed one is listed with whatever
    else is wrong, in the order FastAPI checks them (the path, the headers, then the body)."""
    created = client.post("/fhir/R4/Subscription", json=FHIR_SUBSCRIPTION, headers=org(TEAM))
    resource = created.json()
    path = "/fhir/R4/Subscription" + (f"/{resource['id'] if sid == 'ours' else sid}" if sid else "")
    if body is not None:
        body = {**(FHIR_SUBSCRIPTION if method == "POST" else resource), **body}
    answer = client.request(method, path, json=body, headers={**org(TEAM), **headers})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    assert answer.json() == expected
    (unchanged,) = client.get("/fhir/R4/Subscription", headers=org(TEAM)).json()["entry"]
    assert unchanged["resource"]["meta"]["versionId"] == "1", "nothing changed"


@pytest.mark.parametrize("etag", [None, 'W/"1"', '"1"', "1"])
def test_a_fhir_update_takes_if_match_or_none(client: TestClient, etag: str | None) -> None:
    resource = client.post("/fhir/R4/Subscription", json=FHIR_SUBSCRIPTION, headers=org(TEAM))
    path = f"/fhir/R4/Subscription/{resource.json()['id']}"
    headers = org(TEAM) if etag is None else org(TEAM, **{"If-Match": etag})
    off = {**client.get(path, headers=org(TEAM)).json(), "status": "off"}
    done = client.put(path, json=off, headers=headers)
    assert done.status_code == 200, done.text
    assert done.headers["ETag"] == 'W/"2"'
    again = client.put(path, json={**off, "status": "active"}, headers=headers)
    assert again.status_code == (200 if etag is None else 412), again.text


def test_a_fhir_create_takes_an_idempotency_key_or_none(client: TestClient) -> None:
    keyed = org(TEAM, **{"Idempotency-Key": "fhir-1"})
    first = client.post("/fhir/R4/Subscription", json=FHIR_SUBSCRIPTION, headers=keyed)
    again = client.post("/fhir/R4/Subscription", json=FHIR_SUBSCRIPTION, headers=keyed)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/fhir/R4/Subscription", json=FHIR_SUBSCRIPTION, headers=org(TEAM))
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


@pytest.mark.parametrize("headers", [{"If-Match": "x"}, {"Idempotency-Key": "tab\t"}])
def test_without_an_identity_a_fhir_write_is_401_whatever_its_headers(
    client: TestClient, headers: dict[str, str]
) -> None:
    answer = client.post("/fhir/R4/Subscription", json={"status": 3}, headers=headers)
    assert answer.status_code == 401, answer.text
    sid = client.post("/fhir/R4/Subscription", json=FHIR_SUBSCRIPTION, headers=org(TEAM))
    path = f"/fhir/R4/Subscription/{sid.json()['id']}"
    assert client.put(path, json={"status": 3}, headers=headers).status_code == 401
