"""The FHIR R4 interface as a FHIR system meets it: every kind of resource and Bundle it emits
passes the HAPI FHIR validator (base R4) with zero errors, over the same handlers, access
records and events as the JSON API."""

from __future__ import annotations

from typing import Any

import pytest
from devstack.fhir_validator import FhirValidator
from fastapi import routing
from fastapi.testclient import TestClient
from referrals.config import Settings
from referrals.entrypoints.api.app import create_app
from rx_contracts.topics import REFERRAL_ACCESS, REFERRAL_EVENTS
from rx_messaging.tables import OutboxMessage
from rx_web.identity import learns_identity
from rx_web.openapi import dependency_calls
from sqlmodel import Session, create_engine, select

from .fhir_support import (
    BASE,
    GP,
    OPS,
    OTHER_TEAM,
    OURS,
    PATIENT,
    SERVICE_REQUEST,
    STRANGER,
    TEAM,
    contained_service_request,
    create,
    message,
    outcome,
    patch_task,
    route,
    status_to,
    tasks,
    transaction_bundle,
    write,
)


def valid(validator: FhirValidator, resource: dict[str, Any]) -> dict[str, Any]:
    errors = validator.errors(resource)
    assert errors == [], "\n".join(map(str, errors))
    return resource


def topics(db_url: str) -> list[tuple[str, str]]:
    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            rows = s.exec(select(OutboxMessage).order_by(OutboxMessage.id))
            return [(r.topic, dict(r.headers).get("ce_type", "")) for r in rows]
    finally:
        engine.dispose()


# ---- creating ------------------------------------------------------------------------------


def test_a_transaction_bundle_creates_one_referral_with_its_event(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    response = write(client, "POST", "/", GP, transaction_bundle())
    assert response.status_code == 200, response.text
    bundle = valid(fhir_validator, response.json())
    assert bundle["type"] == "transaction-response"
    patient, service_request = (e["resource"] for e in bundle["entry"])
    assert [e["response"]["status"] for e in bundle["entry"]] == ["201 Created"] * 2
    assert service_request["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert bundle["entry"][1]["response"]["location"].endswith(
        f"{BASE}/ServiceRequest/{service_request['id']}/_history/1"
    )
    # The same referral the JSON API sees, and its ReferralSubmitted event staged with it.
    plain = client.get(f"/referrals/{service_request['id']}", headers=GP).json()
    assert plain["patient"]["nhs_number"] == "9434765919"
    assert plain["patient"]["name"] == "Alex Smith"
    assert plain["cohort"]["frailty"] is True
    assert plain["clinical_summary"] == "Lives alone; fell twice this week"
    assert (REFERRAL_EVENTS, "rx.referrals.ReferralSubmitted.v1") in topics(db_url)


def test_post_service_request_with_its_patient_contained(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    response = write(client, "POST", "/ServiceRequest", GP, contained_service_request())
    assert response.status_code == 201, response.text
    created = valid(fhir_validator, response.json())
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"].endswith(f"/ServiceRequest/{created['id']}/_history/1")
    patient = client.get(f"{BASE}/Patient/{created['id']}", headers=GP)
    assert valid(fhir_validator, patient.json())["birthDate"] == "1941-03-07"


def test_a_retried_create_is_answered_as_the_first_time_and_stored_once(
    client: TestClient, db_url: str
) -> None:
    first = write(client, "POST", "/", GP, transaction_bundle(), key="same")
    again = write(client, "POST", "/", GP, transaction_bundle(), key="same")
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    submitted = [t for t in topics(db_url) if t[1].endswith("ReferralSubmitted.v1")]
    assert len(submitted) == 1
    other = write(client, "POST", "/", GP, transaction_bundle(priority="stat"), key="same")
    assert "Idempotency-Key" in outcome(other, 422)["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("change", "status", "expression"),
    [
        ({"colour": "blue"}, 400, "Bundle.entry[1].resource.colour"),
        ({"priority": "whenever"}, 400, "Bundle.entry[1].resource.priority"),
        ({"code": {"coding": [{"system": "x", "code": "y"}]}}, 422, "ServiceRequest.code"),
        ({"status": "draft"}, 422, "ServiceRequest.status"),
        ({"requester": {"display": "Dr Who"}}, 422, "ServiceRequest.requester"),
    ],
)
def test_bad_input_is_an_operation_outcome_naming_the_element_and_nothing_is_stored(
    client: TestClient,
    db_url: str,
    fhir_validator: FhirValidator,
    change: dict[str, Any],
    status: int,
    expression: str,
) -> None:
    response = write(client, "POST", "/", GP, transaction_bundle(**change))
    body = valid(fhir_validator, outcome(response, status))
    assert any(expression in issue.get("expression", []) for issue in body["issue"]), body
    assert topics(db_url) == []


def test_identifier_rules_are_the_domain_s(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    bundle = transaction_bundle()
    bundle["entry"][0]["resource"]["identifier"][0]["value"] = "9434765918"
    body = valid(fhir_validator, outcome(write(client, "POST", "/", GP, bundle), 422))
    assert body["issue"][0]["expression"] == ["Patient.identifier[0].value"]
    assert "check digit" in body["issue"][0]["diagnostics"]


def test_writes_need_an_idempotency_key_and_a_json_body(client: TestClient) -> None:
    response = client.post(f"{BASE}/", json=transaction_bundle(), headers=GP)
    assert outcome(response, 400)["issue"][0]["expression"] == ["Idempotency-Key"]
    response = client.post(f"{BASE}/", content=b"{not json", headers={**GP, "Idempotency-Key": "k"})
    outcome(response, 400)


def test_a_provider_refers_only_for_its_own_organisation(client: TestClient) -> None:
    response = write(client, "POST", "/", TEAM, transaction_bundle())
    outcome(response, 403)


# ---- reading -------------------------------------------------------------------------------


def test_reads_and_vreads_of_every_resource_validate(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    route(db_url, rid)
    [task] = tasks(client, rid, TEAM)
    for path, version in (
        (f"/ServiceRequest/{rid}", "2"),
        (f"/ServiceRequest/{rid}/_history/1", "1"),
        (f"/Patient/{rid}", "2"),
        (f"/Patient/{rid}/_history/1", "1"),
        (f"/Task/{task['id']}", "2"),
        (f"/Task/{task['id']}/_history/2", "2"),
    ):
        response = client.get(f"{BASE}{path}", headers=TEAM)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["etag"] == f'W/"{version}"'
        assert valid(fhir_validator, response.json())["meta"]["versionId"] == version
    missing = client.get(f"{BASE}/ServiceRequest/{rid}/_history/7", headers=TEAM)
    valid(fhir_validator, outcome(missing, 404))


def test_someone_else_s_referral_is_a_404_like_a_missing_one(
    client: TestClient, db_url: str
) -> None:
    rid = create(client)
    route(db_url, rid)
    [task] = tasks(client, rid, GP)
    for path in (f"/ServiceRequest/{rid}", f"/Patient/{rid}", f"/Task/{task['id']}"):
        theirs = outcome(client.get(f"{BASE}{path}", headers=STRANGER), 404)
        ghost = outcome(client.get(f"{BASE}{path[:-4]}0000", headers=STRANGER), 404)
        assert theirs["issue"][0]["code"] == ghost["issue"][0]["code"] == "not-found"
    assert tasks(client, rid, STRANGER) == []
    assert client.get(f"{BASE}/ServiceRequest/{rid}", headers=OPS).status_code == 200


def test_reads_are_recorded_like_the_json_api_s(client: TestClient, db_url: str) -> None:
    rid = create(client)
    client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP)
    client.get(f"{BASE}/Patient/{rid}", headers=GP)
    client.get(f"{BASE}/ServiceRequest", params={"requester": "B81001"}, headers=GP)
    reads = [t for t in topics(db_url) if t[0] == REFERRAL_ACCESS]
    assert len(reads) == 3


def test_without_a_token_the_answer_is_an_operation_outcome(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    valid(fhir_validator, outcome(client.get(f"{BASE}/Task"), 401))


# ---- searching -----------------------------------------------------------------------------


def test_task_search_pages_with_a_cursor_and_includes_the_service_request(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    ids = [create(client) for _ in range(3)]
    for rid in ids:
        route(db_url, rid)
    params = {"owner": "RXA01", "status": "requested", "_count": "2", "_include": "Task:focus"}
    first = client.get(f"{BASE}/Task", params=params, headers=TEAM)
    page = valid(fhir_validator, first.json())
    assert page["type"] == "searchset"
    modes = [e["search"]["mode"] for e in page["entry"]]
    assert modes == ["match", "match", "include", "include"]
    [next_link] = [link["url"] for link in page["link"] if link["relation"] == "next"]
    second = valid(fhir_validator, client.get(next_link, headers=TEAM).json())
    assert not [link for link in second["link"] if link["relation"] == "next"]
    found = [
        e["resource"]["focus"]["reference"]
        for e in page["entry"] + second["entry"]
        if e["search"]["mode"] == "match"
    ]
    assert found == [f"ServiceRequest/{rid}" for rid in ids]
    theirs = client.get(f"{BASE}/Task", params={"owner": "RXA01"}, headers=OTHER_TEAM).json()
    assert "entry" not in valid(fhir_validator, theirs), "another team sees none of them"


def test_service_request_search_by_requester_status_and_last_updated(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    response = client.get(
        f"{BASE}/ServiceRequest",
        params={
            "requester": "https://fhir.nhs.uk/Id/ods-organization-code|B81001",
            "status": "active",
            "_lastUpdated": "gt2020-01-01T00:00:00Z",
        },
        headers=GP,
    )
    bundle = valid(fhir_validator, response.json())
    assert [e["resource"]["id"] for e in bundle["entry"]] == [rid]
    none = client.get(f"{BASE}/ServiceRequest", params={"status": "revoked"}, headers=GP)
    assert "entry" not in valid(fhir_validator, none.json()), "an empty searchset has no entry"


def test_unknown_search_parameters_are_refused(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    body = valid(fhir_validator, outcome(client.get(f"{BASE}/Task?colour=blue", headers=GP), 400))
    assert body["issue"][0]["expression"] == ["colour"]


# ---- acting on Tasks -----------------------------------------------------------------------


def test_the_owner_accepts_starts_and_completes_its_task(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    route(db_url, rid)
    [task] = tasks(client, rid, TEAM)
    assert task["status"] == "requested" and task["owner"]["identifier"]["value"] == "RXA01"
    for step in (status_to("accepted"), status_to("in-progress")):
        response = patch_task(client, task, TEAM, step)
        assert response.status_code == 200, response.text
        task = valid(fhir_validator, response.json())
    done = status_to(
        "completed",
        output=[
            {
                "type": {"text": "Outcome"},
                "valueCodeableConcept": {
                    "coding": [{"system": f"{OURS}/outcome", "code": "remained-at-home"}],
                    "text": "Mobilising safely",
                },
            }
        ],
    )
    response = patch_task(client, task, TEAM, done)
    task = valid(fhir_validator, response.json())
    assert task["status"] == "completed" and task["meta"]["versionId"] == "5"
    assert task["output"][0]["valueCodeableConcept"]["text"] == "Mobilising safely"
    assert client.get(f"{BASE}/Task/{task['id']}", headers=TEAM).json() == task
    plain = client.get(f"/referrals/{rid}", headers=TEAM).json()
    assert (plain["status"], plain["outcome"]) == ("completed", "remained-at-home")
    sr = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()
    assert sr["status"] == "completed"
    events = [t[1].rsplit(".", 2)[-2] for t in topics(db_url) if t[0] == REFERRAL_EVENTS]
    assert events == [
        "ReferralSubmitted",
        "ReferralAccepted",
        "ReferralStarted",
        "ReferralCompleted",
    ]


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_a_retried_rejection_is_answered_as_the_first_time(
    client: TestClient, db_url: str, method: str
) -> None:
    """Once rejected, the Task is no longer the organisation's to see; a retry of the same
    request (its answer lost on the way) must still get the first answer, not a 404."""
    rid = create(client)
    route(db_url, rid, "RXA01")
    [first] = tasks(client, rid, TEAM)
    reason = {"coding": [{"system": f"{OURS}/rejection-reason", "code": "at-capacity"}]}
    version = int(first["meta"]["versionId"])
    if method == "PATCH":
        body: Any = status_to("rejected", statusReason=reason)
        path, content_type = f"/Task/{first['id']}", "application/json-patch+json"
    else:
        body = {**first, "status": "rejected", "statusReason": reason}
        path, content_type = f"/Task/{first['id']}", "application/fhir+json"
    sent = [
        write(client, method, path, TEAM, body, version, key="reject-1", content_type=content_type)
        for _ in range(2)
    ]
    assert [r.status_code for r in sent] == [200, 200], sent[1].text
    assert sent[1].json() == sent[0].json()
    assert sent[1].json()["status"] == "rejected"
    assert client.get(f"{BASE}/Task/{first['id']}", headers=TEAM).status_code == 404


def test_a_rejection_keeps_the_rejected_task_and_the_next_organisation_gets_a_new_one(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    route(db_url, rid, "RXA01")
    [first] = tasks(client, rid, TEAM)
    reason = {
        "coding": [
            {"system": f"{OURS}/rejection-reason", "code": "not-available-within-timescale"}
        ],
        "text": "No capacity before 18:00",
    }
    response = patch_task(client, first, TEAM, status_to("rejected", statusReason=reason))
    rejected = valid(fhir_validator, response.json())
    assert rejected["status"] == "rejected" and rejected["statusReason"] == reason
    route(db_url, rid, "RXA02")
    both = tasks(client, rid, GP)
    assert [(t["owner"]["identifier"]["value"], t["status"]) for t in both] == [
        ("RXA01", "rejected"),
        ("RXA02", "requested"),
    ]
    assert both[0]["id"] == first["id"] and both[1]["id"] != first["id"]
    assert both[0]["focus"] == both[1]["focus"] == {"reference": f"ServiceRequest/{rid}"}
    history = client.get(f"{BASE}/Task/{first['id']}/_history/2", headers=GP).json()
    assert history["status"] == "requested"
    assert tasks(client, rid, TEAM) == [], "the decliner no longer sees the referral"


def test_a_stale_version_is_412_and_the_wrong_step_409(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    route(db_url, rid)
    [task] = tasks(client, rid, TEAM)
    stale = patch_task(client, task, TEAM, status_to("accepted"), version=1)
    body = valid(fhir_validator, outcome(stale, 412))
    assert stale.headers["etag"] == 'W/"2"'
    assert "version 2" in body["issue"][0]["diagnostics"]
    early = patch_task(
        client,
        task,
        TEAM,
        status_to(
            "completed",
            output=[
                {
                    "type": {"text": "x"},
                    "valueCodeableConcept": {
                        "coding": [{"system": f"{OURS}/outcome", "code": "died"}]
                    },
                }
            ],
        ),
    )
    valid(fhir_validator, outcome(early, 409))
    not_owner = patch_task(client, task, GP, status_to("accepted"))
    valid(fhir_validator, outcome(not_owner, 403))
    unreasoned = patch_task(client, task, TEAM, status_to("rejected"))
    assert outcome(unreasoned, 422)["issue"][0]["expression"] == ["Task.statusReason"]
    other_field = patch_task(client, task, TEAM, [{"op": "replace", "path": "/owner", "value": {}}])
    assert outcome(other_field, 422)["issue"][0]["expression"] == ["Task.owner"]
    missing_if_match = client.patch(
        f"{BASE}/Task/{task['id']}",
        json=status_to("accepted"),
        headers={**TEAM, "Idempotency-Key": "k", "Content-Type": "application/json-patch+json"},
    )
    valid(fhir_validator, outcome(missing_if_match, 428))


# ---- what is supported ---------------------------------------------------------------------


def test_the_capability_statement_lists_exactly_the_mounted_routes(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    statement = valid(fhir_validator, client.get(f"{BASE}/metadata").json())
    [rest] = statement["rest"]
    declared = {(r["type"], i["code"]) for r in rest["resource"] for i in r["interaction"]}
    declared |= {("system", i["code"]) for i in rest["interaction"]}
    declared |= {("system", f"${o['name']}") for o in rest["operation"]}
    declared |= {
        (r["type"], f"${o['name']}") for r in rest["resource"] for o in r.get("operation", [])
    }
    mounted = {_interaction(route.methods, route.path) for route in _fhir_routes(client)}
    assert declared | {("system", "capabilities")} == mounted


def test_every_fhir_route_but_metadata_learns_its_caller(client: TestClient) -> None:
    for fhir_route in _fhir_routes(client):
        learns = any(learns_identity(c) for c in dependency_calls(fhir_route.dependant))
        assert learns == (fhir_route.path != "/metadata"), fhir_route.path


def _fhir_routes(client: TestClient) -> list[Any]:
    [mount] = [r for r in client.app.routes if getattr(r, "path", "") == BASE]  # type: ignore[attr-defined]
    flatten = getattr(routing, "iter_route_contexts", None)  # FastAPI >= 0.165 includes lazily
    routes = list(flatten(mount.routes)) if flatten else list(mount.routes)
    return [r for r in routes if getattr(r, "methods", None)]


def _interaction(methods: set[str], path: str) -> tuple[str, str]:
    parts = path.strip("/").split("/")
    method = next(iter(methods - {"HEAD"}))
    if path == "/":
        return ("system", "transaction")
    if path.startswith("/$"):
        return ("system", path[1:])
    if parts == ["metadata"]:
        return ("system", "capabilities")
    kind = parts[0]
    if parts[-1].startswith("$"):
        return (kind, parts[-1])
    if len(parts) == 1:
        return (kind, {"GET": "search-type", "POST": "create"}[method])
    if len(parts) == 2:
        return (kind, {"GET": "read", "PATCH": "patch", "PUT": "update"}[method])
    return (kind, "vread")


# ---- updates with PUT ----------------------------------------------------------------------


def test_the_referrer_amends_with_put_and_the_old_version_stays_readable(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    current = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()
    amended = {**current, "priority": "asap", "note": [{"text": "Now confused"}]}
    response = write(client, "PUT", f"/ServiceRequest/{rid}", GP, amended, version=1)
    assert response.status_code == 200, response.text
    after = valid(fhir_validator, response.json())
    assert (after["priority"], after["meta"]["versionId"]) == ("asap", "2")
    assert response.headers["etag"] == 'W/"2"'
    read = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()
    assert read == after, "the answer is the version as read, meta.lastUpdated included"
    before = client.get(f"{BASE}/ServiceRequest/{rid}/_history/1", headers=GP).json()
    assert (before["priority"], before["note"][0]["text"]) == (
        "urgent",
        "Lives alone; fell twice this week",
    )
    assert (REFERRAL_EVENTS, "rx.referrals.ReferralAmended.v1") in topics(db_url)
    stale = write(client, "PUT", f"/ServiceRequest/{rid}", GP, amended, version=1)
    valid(fhir_validator, outcome(stale, 412))


def test_revoking_the_service_request_cancels_the_referral_and_its_task(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    route(db_url, rid)
    current = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()
    unexplained = write(
        client, "PUT", f"/ServiceRequest/{rid}", GP, {**current, "status": "revoked"}, version=2
    )
    assert outcome(unexplained, 422)["issue"][0]["expression"] == ["ServiceRequest.extension"]
    reason = {
        "url": "http://hl7.org/fhir/StructureDefinition/request-statusReason",
        "valueCodeableConcept": {"text": "Admitted overnight"},
    }
    revoked = {**current, "status": "revoked", "extension": [reason]}
    response = write(client, "PUT", f"/ServiceRequest/{rid}", GP, revoked, version=2)
    assert valid(fhir_validator, response.json())["status"] == "revoked"
    assert client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()["extension"] == [reason]
    [task] = tasks(client, rid, GP)
    assert (task["status"], task["statusReason"]["text"]) == ("cancelled", "Admitted overnight")
    valid(fhir_validator, task)


def test_the_owner_moves_its_task_on_with_put_and_may_change_nothing_else(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    route(db_url, rid)
    [task] = tasks(client, rid, TEAM)
    taken = {
        **task,
        "owner": {"identifier": {"system": "x", "value": "RXA09"}},
        "status": "accepted",
    }
    refused = write(client, "PUT", f"/Task/{task['id']}", TEAM, taken, version=2)
    assert outcome(refused, 422)["issue"][0]["expression"] == ["Task.owner"]
    response = write(
        client, "PUT", f"/Task/{task['id']}", TEAM, {**task, "status": "accepted"}, version=2
    )
    assert response.status_code == 200, response.text
    assert valid(fhir_validator, response.json())["status"] == "accepted"


# ---- BaRS-style messaging ------------------------------------------------------------------


def test_a_new_message_creates_the_referral_and_answers_with_a_response_message(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    sent = message("new", dict(SERVICE_REQUEST), dict(PATIENT))
    response = write(client, "POST", "/$process-message", GP, sent)
    assert response.status_code == 200, response.text
    answer = valid(fhir_validator, response.json())
    header, service_request = (e["resource"] for e in answer["entry"])
    assert answer["type"] == "message" and header["resourceType"] == "MessageHeader"
    assert header["response"] == {"identifier": sent["entry"][0]["resource"]["id"], "code": "ok"}
    rid = service_request["id"]
    assert client.get(f"/referrals/{rid}", headers=GP).json()["priority"] == "urgent"


def test_update_and_delete_messages_amend_and_cancel_with_the_version_they_name(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    current = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()
    renamed = {**PATIENT, "name": [{"text": "Alex J Smith"}]}
    update = message("update", {**current, "priority": "stat"}, renamed)
    update["entry"][1]["resource"]["subject"] = {"reference": update["entry"][2]["fullUrl"]}
    response = write(client, "POST", "/$process-message", GP, update)
    assert response.status_code == 200, response.text
    amended = valid(fhir_validator, response.json())["entry"][1]["resource"]
    assert (amended["priority"], amended["meta"]["versionId"]) == ("stat", "2")
    assert client.get(f"{BASE}/Patient/{rid}", headers=GP).json()["name"] == [
        {"text": "Alex J Smith"}
    ]
    stale = write(client, "POST", "/$process-message", GP, message("update", current))
    valid(fhir_validator, outcome(stale, 412))
    reason = {
        "url": "http://hl7.org/fhir/StructureDefinition/request-statusReason",
        "valueCodeableConcept": {"text": "Patient declined"},
    }
    delete = message("delete", {**amended, "status": "revoked", "extension": [reason]})
    response = write(client, "POST", "/$process-message", GP, delete)
    revoked = valid(fhir_validator, response.json())["entry"][1]["resource"]
    assert revoked["status"] == "revoked"
    assert client.get(f"/referrals/{rid}", headers=GP).json()["status"] == "cancelled"


def test_a_message_about_something_else_is_refused(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    sent = message("new", dict(SERVICE_REQUEST), dict(PATIENT))
    sent["entry"][0]["resource"]["eventCoding"]["code"] = "booking-request"
    body = valid(fhir_validator, outcome(write(client, "POST", "/$process-message", GP, sent), 422))
    assert body["issue"][0]["expression"] == ["Bundle.entry[0].resource.eventCoding"]


def test_versions_assignments_and_searches_on_both_databases(database_url: str) -> None:
    """The ledger's writes and the searches' queries, on SQLite and PostgreSQL alike."""
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        rid = create(client)
        route(database_url, rid, "RXA01")
        [first] = tasks(client, rid, TEAM)
        reason = {"coding": [{"system": f"{OURS}/rejection-reason", "code": "failed-contact"}]}
        assert patch_task(
            client, first, TEAM, status_to("rejected", statusReason=reason)
        ).is_success
        route(database_url, rid, "RXA02")
        [_, second] = tasks(client, rid, GP)
        accepted = patch_task(client, second, OTHER_TEAM, status_to("accepted")).json()
        assert accepted["meta"]["versionId"] == "5"
        page = client.get(
            f"{BASE}/Task",
            params={"requester": "B81001", "_count": "1", "_lastUpdated": "gt2020-01-01T00:00:00Z"},
            headers=GP,
        ).json()
        [next_link] = [link["url"] for link in page["link"] if link["relation"] == "next"]
        rest = client.get(next_link, headers=GP).json()
        statuses = [e["resource"]["status"] for e in page["entry"] + rest["entry"]]
        assert statuses == ["rejected", "accepted"]
        old = client.get(f"{BASE}/ServiceRequest/{rid}/_history/2", headers=GP).json()
        assert old["performerType"]["coding"][0]["code"] == "rapid-response"
        assert (
            client.get(f"{BASE}/Task/{first['id']}/_history/3", headers=GP).json()["status"]
            == "rejected"
        )


def test_the_platform_s_own_refusals_arrive_as_operation_outcomes(
    db_url: str, fhir_validator: FhirValidator
) -> None:
    """A body over the size limit is refused by middleware before any FHIR route runs."""
    with TestClient(create_app(Settings(database_url=db_url, max_body_bytes=500))) as client:
        response = write(client, "POST", "/", GP, transaction_bundle())
        body = valid(fhir_validator, outcome(response, 413))
        assert "limit of 500 bytes" in body["issue"][0]["diagnostics"]
        unknown = valid(fhir_validator, outcome(client.get(f"{BASE}/Encounter/1", headers=GP), 404))
        assert unknown["issue"][0]["code"] == "not-found"
        plain = client.post("/referrals", content=b"x" * 600, headers=GP)
        assert plain.headers["content-type"] == "application/problem+json", "JSON API unchanged"
