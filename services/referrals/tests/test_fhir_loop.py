"""The closing-the-loop steps on the FHIR face: a question puts the Task on hold, a failure
ends it failed, coded cancellation reasons; every resource passes the HAPI FHIR validator."""

from __future__ import annotations

import uuid

from devstack.fhir_validator import FhirValidator
from fastapi.testclient import TestClient

from .fhir_support import BASE, GP, OURS, TEAM, create, outcome, patch_task, route, status_to, write
from .fhir_support import tasks as tasks_of
from .test_fhir import valid


def answer(client: TestClient, rid: str, version: int) -> None:
    """The referrer answers on the JSON API (the FHIR face has no answer yet)."""
    headers = {**GP, "Idempotency-Key": str(uuid.uuid4()), "If-Match": f'"{version}"'}
    response = client.post(
        f"/referrals/{rid}/provide-info", json={"answer": "Key safe 4512"}, headers=headers
    )
    assert response.status_code == 200, response.text


def test_a_question_puts_the_task_on_hold_and_the_answer_back_to_requested(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    route(db_url, rid)
    [task] = tasks_of(client, rid, TEAM)
    silent = patch_task(client, task, TEAM, status_to("on-hold"))
    assert outcome(silent, 422)["issue"][0]["expression"] == ["Task.statusReason"]
    asked = patch_task(
        client, task, TEAM, status_to("on-hold", statusReason={"text": "Is there a key safe?"})
    )
    assert asked.status_code == 200, asked.text
    held = valid(fhir_validator, asked.json())
    assert (held["status"], held["businessStatus"]["coding"][0]["code"]) == (
        "on-hold",
        "info-requested",
    )
    sr = valid(fhir_validator, client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json())
    assert sr["status"] == "active"
    plain = client.get(f"/referrals/{rid}", headers=GP).json()
    assert plain["status"] == "info_requested"
    answer(client, rid, plain["version"])
    [task] = tasks_of(client, rid, TEAM)
    assert (task["status"], task["businessStatus"]["coding"][0]["code"]) == (
        "requested",
        "info-provided",
    )
    valid(fhir_validator, task)
    accepted = patch_task(client, task, TEAM, status_to("accepted"))
    assert valid(fhir_validator, accepted.json())["status"] == "accepted"


def test_a_failed_task_carries_its_coded_reason_and_revokes_the_service_request(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    route(db_url, rid)
    [task] = tasks_of(client, rid, TEAM)
    task = patch_task(client, task, TEAM, status_to("accepted")).json()
    uncoded = patch_task(client, task, TEAM, status_to("failed", statusReason={"text": "no"}))
    assert outcome(uncoded, 422)["issue"][0]["expression"] == ["Task.statusReason"]
    reason = {
        "coding": [{"system": f"{OURS}/failure-reason", "code": "failed-contact"}],
        "text": "Three calls, no answer at the door",
    }
    failed = patch_task(client, task, TEAM, status_to("failed", statusReason=reason))
    assert failed.status_code == 200, failed.text
    task = valid(fhir_validator, failed.json())
    assert (task["status"], task["statusReason"]) == ("failed", reason)
    sr = valid(fhir_validator, client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json())
    assert sr["status"] == "revoked"
    assert sr["extension"][0]["valueCodeableConcept"] == reason
    assert client.get(f"/referrals/{rid}", headers=GP).json()["status"] == "failed"


def test_a_coded_cancellation_reason_is_taken_and_shown(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = create(client)
    current = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()
    ext = "http://hl7.org/fhir/StructureDefinition/request-statusReason"
    unknown = {"coding": [{"system": f"{OURS}/cancellation-reason", "code": "bored"}]}
    refused = write(
        client,
        "PUT",
        f"/ServiceRequest/{rid}",
        GP,
        {
            **current,
            "status": "revoked",
            "extension": [{"url": ext, "valueCodeableConcept": unknown}],
        },
        version=1,
    )
    assert outcome(refused, 422)["issue"][0]["expression"] == ["ServiceRequest.extension"]
    coded = {"coding": [{"system": f"{OURS}/cancellation-reason", "code": "recovered"}]}
    revoked = {
        **current,
        "status": "revoked",
        "extension": [{"url": ext, "valueCodeableConcept": coded}],
    }
    response = write(client, "PUT", f"/ServiceRequest/{rid}", GP, revoked, version=1)
    assert response.status_code == 200, response.text
    sr = valid(fhir_validator, response.json())
    assert sr["extension"][0]["valueCodeableConcept"] == coded
    again = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()
    assert again["extension"] == sr["extension"]
    history = client.get(f"/referrals/{rid}/history", headers=GP).json()
    assert (history[-1]["action"], history[-1]["reason_code"]) == ("cancel", "recovered")
