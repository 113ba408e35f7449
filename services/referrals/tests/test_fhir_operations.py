"""Redirect and re-route on the FHIR face: ``Task/{id}/$redirect`` (the assigned organisation)
and ``ServiceRequest/{id}/$reroute`` (ops), each taking a Parameters resource, through the JSON
API's handler and rules; their OperationDefinitions pass the HAPI FHIR validator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from devstack.fhir_validator import FhirValidator
from fastapi.testclient import TestClient
from httpx import Response
from rx_messaging.tables import OutboxMessage
from sqlmodel import Session, create_engine, select

from .fhir_support import (
    BASE,
    GP,
    ODS,
    OPS,
    OTHER_TEAM,
    OURS,
    STRANGER,
    TEAM,
    create,
    outcome,
    patch_task,
    route,
    status_to,
    write,
)
from .fhir_support import tasks as tasks_of
from .test_fhir import valid

DEFINITIONS = "https://referral-exchange.example/fhir/OperationDefinition"


def parameters(**values: Any) -> dict[str, Any]:
    """A Parameters resource: ``reason`` a string, ``provider_type`` a code of ours,
    ``organization`` an ODS code; anything else given as the parameter itself."""
    found: list[dict[str, Any]] = []
    for name, value in values.items():
        if name == "reason":
            found.append({"name": "reason", "valueString": value})
        elif name == "provider_type":
            coding = {"system": f"{OURS}/provider-type", "code": value}
            found.append({"name": "provider-type", "valueCoding": coding})
        elif name == "organization":
            identifier = {"system": ODS, "value": value}
            found.append({"name": "organization", "valueIdentifier": identifier})
        else:
            found.append(value)
    return {"resourceType": "Parameters", "parameter": found}


def redirect(
    client: TestClient,
    task: dict[str, Any],
    who: dict[str, str],
    body: dict[str, Any],
    version: int | None = None,
    key: str | None = None,
) -> Response:
    version = int(task["meta"]["versionId"]) if version is None else version
    return write(client, "POST", f"/Task/{task['id']}/$redirect", who, body, version, key)


def events(db_url: str, event_type: str) -> list[dict[str, Any]]:
    """The payloads of the referral events of ``event_type`` in the outbox."""
    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            rows = s.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
            return [
                json.loads(r.value)
                for r in rows
                if dict(r.headers).get("ce_type") == f"rx.referrals.{event_type}.v1"
            ]
    finally:
        engine.dispose()


def routed(client: TestClient, db_url: str) -> tuple[str, dict[str, Any]]:
    """A referral routed to RXA01, and RXA01's Task."""
    rid = create(client)
    route(db_url, rid)
    [task] = tasks_of(client, rid, TEAM)
    return rid, task


# ---- redirect -------------------------------------------------------------------------------


def test_the_owner_redirects_and_the_referral_goes_back_to_routing_towards_the_target(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid, task = routed(client, db_url)
    response = redirect(
        client, task, TEAM, parameters(reason="Needs a GP review first", provider_type="acute")
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    ended = valid(fhir_validator, response.json())
    assert ended["id"] == task["id"]
    assert (ended["status"], ended["businessStatus"]["coding"][0]["code"]) == (
        "rejected",
        "redirected",
    )
    assert ended["statusReason"] == {
        "coding": [{"system": f"{OURS}/assignment-end-reason", "code": "redirected"}],
        "text": "Needs a GP review first",
    }
    assert response.headers["etag"] == 'W/"3"' == f'W/"{ended["meta"]["versionId"]}"'
    plain = client.get(f"/referrals/{rid}", headers=GP).json()
    assert (plain["status"], plain["assigned_org"], plain["version"]) == ("submitted", None, 3)
    [event] = events(db_url, "ReferralRedirected")
    assert (event["target_provider_type"], event["target_org"], event["redirected_by"]) == (
        "acute",
        None,
        "RXA01",
    )
    sr = valid(fhir_validator, client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json())
    assert (sr["status"], "performerType" in sr) == ("active", False)
    [seen] = tasks_of(client, rid, GP)
    assert seen == ended
    # The former owner no longer sees the referral or its Task.
    assert client.get(f"{BASE}/Task/{task['id']}", headers=TEAM).status_code == 404


def test_a_redirect_to_an_organisation_names_it_by_ods_code(
    client: TestClient, db_url: str
) -> None:
    _, task = routed(client, db_url)
    response = redirect(client, task, TEAM, parameters(reason="Their patch", organization="rxa02"))
    assert response.status_code == 200, response.text
    [event] = events(db_url, "ReferralRedirected")
    assert (event["target_provider_type"], event["target_org"]) == (None, "RXA02")


def test_a_redirect_may_name_both_a_provider_type_and_an_organisation(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    # As the JSON API's redirect: routing gives the referral to the organisation (whatever its
    # type, which is how tests/e2e sees it go to RXA02, a rapid-response team, not to acute).
    rid, task = routed(client, db_url)
    body = parameters(reason="Known to their team", provider_type="acute", organization="RXA02")
    response = redirect(client, task, TEAM, body)
    assert response.status_code == 200, response.text
    ended = valid(fhir_validator, response.json())
    assert (ended["status"], ended["businessStatus"]["coding"][0]["code"]) == (
        "rejected",
        "redirected",
    )
    [event] = events(db_url, "ReferralRedirected")
    assert (event["target_provider_type"], event["target_org"]) == ("acute", "RXA02")
    assert client.get(f"/referrals/{rid}", headers=GP).json()["status"] == "submitted"
    # The provider type's own rule still holds with an organisation beside it.
    _, other = routed(client, db_url)
    social = parameters(reason="Care package", provider_type="social-care", organization="SCC01")
    refused = outcome(redirect(client, other, TEAM, social), 422)
    assert "consent" in refused["issue"][0]["diagnostics"]


def test_only_the_owner_redirects(client: TestClient, db_url: str) -> None:
    rid, task = routed(client, db_url)
    body = parameters(reason="Elsewhere", provider_type="acute")
    for who in (STRANGER, OTHER_TEAM):  # cannot see the referral: as if it did not exist
        outcome(redirect(client, task, who, body), 404)
    for who in (GP, OPS):  # can see it, may not redirect it
        refused = outcome(redirect(client, task, who, body), 403)
        assert "you may" in refused["issue"][0]["diagnostics"]
    outcome(write(client, "POST", "/Task/no-such-task/$redirect", TEAM, body, 2), 404)
    assert client.get(f"/referrals/{rid}", headers=GP).json()["status"] == "routed"
    assert events(db_url, "ReferralRedirected") == []


def test_a_stale_or_missing_if_match_is_refused(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    _, task = routed(client, db_url)
    body = parameters(reason="Elsewhere", provider_type="acute")
    stale = redirect(client, task, TEAM, body, version=1)
    valid(fhir_validator, outcome(stale, 412))
    assert stale.headers["etag"] == 'W/"2"'
    missing = client.post(
        f"{BASE}/Task/{task['id']}/$redirect",
        json=body,
        headers={**TEAM, "Idempotency-Key": "k"},
    )
    assert outcome(missing, 428)["issue"][0]["expression"] == ["If-Match"]
    unkeyed = client.post(
        f"{BASE}/Task/{task['id']}/$redirect", json=body, headers={**TEAM, "If-Match": 'W/"2"'}
    )
    assert outcome(unkeyed, 400)["issue"][0]["expression"] == ["Idempotency-Key"]
    assert events(db_url, "ReferralRedirected") == []


def test_a_redirect_after_acceptance_is_a_conflict(client: TestClient, db_url: str) -> None:
    _, task = routed(client, db_url)
    accepted = patch_task(client, task, TEAM, status_to("accepted")).json()
    refused = redirect(client, accepted, TEAM, parameters(reason="x", provider_type="acute"))
    outcome(refused, 409)


def test_an_ended_task_is_refused_alike_by_a_change_and_a_redirect(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    # Redirected towards its own organisation, the referral comes back to it: the first Task
    # is the organisation's to see again, but has ended.
    _, task = routed(client, db_url)
    first = redirect(client, task, TEAM, parameters(reason="Wrong team", organization="RXA01"))
    assert first.status_code == 200, first.text
    route(db_url, task["focus"]["reference"].split("/")[1], "RXA01")
    ended = client.get(f"{BASE}/Task/{task['id']}", headers=TEAM).json()
    assert ended["status"] == "rejected"
    version = int(ended["meta"]["versionId"])
    tried = [
        patch_task(client, ended, TEAM, status_to("accepted")),
        write(client, "PUT", f"/Task/{task['id']}", TEAM, {**ended, "status": "accepted"}, version),
        redirect(client, ended, TEAM, parameters(reason="Again", provider_type="acute")),
    ]
    said = {valid(fhir_validator, outcome(r, 409))["issue"][0]["diagnostics"] for r in tried}
    assert said == {f"Task {task['id']} has ended (rejected); act on the current Task"}
    assert len(events(db_url, "ReferralRedirected")) == 1


@pytest.mark.parametrize(
    ("body", "status", "expression"),
    [
        (parameters(provider_type="acute"), 400, "Parameters.parameter.where(name = 'reason')"),
        (
            parameters(reason="x", provider_type="acute", extra={"name": "urgency"}),
            400,
            "Parameters.parameter[2].name",
        ),
        (
            parameters(reason="x"),
            400,
            "Parameters.parameter.where(name = 'provider-type')",
        ),
        (parameters(reason="", provider_type="acute"), 400, "Parameters.parameter[0].valueString"),
        (
            parameters(reason="x", v={"name": "provider-type", "valueCode": "acute"}),
            400,
            "Parameters.parameter[1].valueCode",
        ),
        (
            parameters(reason="x", provider_type="dentist"),
            422,
            "Parameters.parameter[1].valueCoding",
        ),
        (
            parameters(
                reason="x",
                v={"name": "provider-type", "valueCoding": {"system": OURS, "code": "acute"}},
            ),
            400,
            "Parameters.parameter[1].valueCoding",
        ),
        (
            parameters(reason="x", organization="not an ods code"),
            422,
            "Parameters.parameter[1].valueIdentifier.value",
        ),
        (
            parameters(
                reason="x", provider_type="acute", again={"name": "reason", "valueString": "y"}
            ),
            400,
            "Parameters.parameter[2]",
        ),
        ({"resourceType": "Task"}, 400, "Parameters"),
        (
            parameters(reason="x", p={"name": ["provider-type"], "valueCoding": {}}),
            400,
            "Parameters.parameter[1].name",
        ),
        (
            parameters(
                reason="x",
                p={"name": "provider-type", "valueCoding": {"system": f"{OURS}/provider-type"}},
            ),
            422,
            "Parameters.parameter[1].valueCoding",
        ),
    ],
    ids=[
        "no reason",
        "unknown parameter",
        "no target",
        "empty reason",
        "a code without its system",
        "unknown provider type",
        "another code system",
        "not an ODS code",
        "reason twice",
        "not Parameters",
        "a name that is not a string",
        "a Coding without its code",
    ],
)
def test_each_bad_parameter_is_named(
    client: TestClient, db_url: str, body: dict[str, Any], status: int, expression: str
) -> None:
    rid, task = routed(client, db_url)
    refused = outcome(redirect(client, task, TEAM, body), status)
    assert refused["issue"][0]["expression"] == [expression], refused
    assert client.get(f"/referrals/{rid}", headers=GP).json()["version"] == 2


def test_a_replay_gets_the_first_answer_and_redirects_once(client: TestClient, db_url: str) -> None:
    _, task = routed(client, db_url)
    body = parameters(reason="Elsewhere", organization="RXA02")
    first = redirect(client, task, TEAM, body, key="redirect-1")
    assert first.status_code == 200, first.text
    # The Task is no longer its former owner's to see; the retry is answered all the same.
    again = redirect(client, task, TEAM, body, key="redirect-1")
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert (again.json(), again.headers["etag"]) == (first.json(), first.headers["etag"])
    assert len(events(db_url, "ReferralRedirected")) == 1
    other = redirect(
        client, task, TEAM, parameters(reason="No", organization="RXA03"), key="redirect-1"
    )
    assert "Idempotency-Key" in outcome(other, 422)["issue"][0]["diagnostics"]


# ---- re-route -------------------------------------------------------------------------------


def reroute(
    client: TestClient, rid: str, who: dict[str, str], body: dict[str, Any], version: int
) -> Response:
    return write(client, "POST", f"/ServiceRequest/{rid}/$reroute", who, body, version)


def test_ops_reroute_and_the_current_task_ends_rerouted(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid, task = routed(client, db_url)
    body = parameters(reason="Locality cover agreed by phone", organization="RXA02")
    for who in (GP, TEAM):
        outcome(reroute(client, rid, who, body, 2), 403)
    outcome(reroute(client, rid, STRANGER, body, 2), 404)
    outcome(reroute(client, rid, OPS, body, 1), 412)
    response = reroute(client, rid, OPS, body, 2)
    assert response.status_code == 200, response.text
    sr = valid(fhir_validator, response.json())
    assert (sr["resourceType"], sr["id"], sr["status"], sr["meta"]["versionId"]) == (
        "ServiceRequest",
        rid,
        "active",
        "3",
    )
    assert "performerType" not in sr and response.headers["etag"] == 'W/"3"'
    read = client.get(f"{BASE}/ServiceRequest/{rid}", headers=OPS).json()
    assert read == sr, "the answer is the ServiceRequest as read, meta.lastUpdated included"
    [event] = events(db_url, "ReferralRerouted")
    assert (event["target_provider_type"], event["target_org"]) == (None, "RXA02")
    [ended] = tasks_of(client, rid, OPS)
    assert (ended["id"], ended["status"], ended["businessStatus"]["coding"][0]["code"]) == (
        task["id"],
        "cancelled",
        "rerouted",
    )
    assert client.get(f"/referrals/{rid}", headers=GP).json()["status"] == "submitted"


def test_a_reroute_needs_no_target_and_takes_both(client: TestClient, db_url: str) -> None:
    rid = create(client)
    response = reroute(client, rid, OPS, parameters(reason="Stuck"), 1)
    assert response.status_code == 200, response.text
    two = parameters(reason="Stuck again", provider_type="acute", organization="RXA02")
    response = reroute(client, rid, OPS, two, 2)
    assert response.status_code == 200, response.text
    assert [
        (e["target_provider_type"], e["target_org"]) for e in events(db_url, "ReferralRerouted")
    ] == [
        (None, None),
        ("acute", "RXA02"),
    ]


# ---- declared -------------------------------------------------------------------------------


def test_each_operation_is_declared_by_a_valid_operation_definition(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    statement = client.get(f"{BASE}/metadata").json()
    declared = {
        (r["type"], o["name"]): o["definition"]
        for r in statement["rest"][0]["resource"]
        for o in r.get("operation", [])
    }
    assert declared == {
        ("Task", "redirect"): f"{DEFINITIONS}/Task-redirect",
        ("ServiceRequest", "reroute"): f"{DEFINITIONS}/ServiceRequest-reroute",
    }
    for (kind, code), url in declared.items():
        read = client.get(f"{BASE}/OperationDefinition/{url.rsplit('/', 1)[-1]}", headers=GP)
        assert read.status_code == 200, read.text
        definition = valid(fhir_validator, read.json())
        assert (definition["url"], definition["code"], definition["resource"]) == (
            url,
            code,
            [kind],
        )
        # A target may be a provider type, an organisation or both: each is 0..1.
        assert {
            p["name"]: (p["min"], p["max"]) for p in definition["parameter"] if p["use"] == "in"
        } == {"reason": (1, "1"), "provider-type": (0, "1"), "organization": (0, "1")}
        assert all(
            "both" in p["documentation"]
            for p in definition["parameter"]
            if p["name"] in ("provider-type", "organization")
        )
    outcome(client.get(f"{BASE}/OperationDefinition/Task-delete", headers=GP), 404)
    assert client.get(f"{BASE}/OperationDefinition/Task-redirect").status_code == 401
