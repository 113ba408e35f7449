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
