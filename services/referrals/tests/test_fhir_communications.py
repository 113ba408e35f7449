"""Questions, answers, messages and interim updates as Communications, and a traced NHS number
recorded with a Patient update, on the FHIR face: the same handlers, checks and events as the
JSON API; every refusal an OperationOutcome naming what was wrong; every resource emitted
passes the HAPI FHIR validator."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from devstack.fhir_validator import FhirValidator
from fastapi.testclient import TestClient
from httpx import Response
from rx_contracts.topics import REFERRAL_EVENTS

from .fhir_support import (
    BASE,
    GP,
    ODS,
    OPS,
    OURS,
    STRANGER,
    TEAM,
    create,
    outcome,
    patch_task,
    route,
    status_to,
    transaction_bundle,
    write,
)
from .fhir_support import tasks as tasks_of
from .test_fhir import topics, valid

CATEGORY = f"{OURS}/communication-category"
VERIFICATION_EXT = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
)
VERIFICATION = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"


def said(rid: str, kind: str, text: str | None = None, **more: Any) -> dict[str, Any]:
    """A Communication about referral ``rid`` of category ``kind``."""
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "basedOn": [{"reference": f"ServiceRequest/{rid}"}],
        "status": "completed",
        "category": [{"coding": [{"system": CATEGORY, "code": kind}]}],
        **more,
    }
    if text is not None:
        resource.setdefault("payload", []).insert(0, {"contentString": text})
    return resource


def version_of(client: TestClient, rid: str) -> int:
    sr = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()
    return int(sr["meta"]["versionId"])


def post(
    client: TestClient,
    who: dict[str, str],
    body: dict[str, Any],
    version: int | None,
    key: str | None = None,
) -> Response:
    return write(client, "POST", "/Communication", who, body, version=version, key=key)


def events(db_url: str) -> list[str]:
    """The referral events staged in the outbox, by name, oldest first."""
    return [ce_type.split(".")[2] for topic, ce_type in topics(db_url) if topic == REFERRAL_EVENTS]


def routed(client: TestClient, db_url: str) -> str:
    rid = create(client)
    route(db_url, rid)
    return rid


def test_question_answer_with_a_document_then_accept(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = routed(client, db_url)
    asked = post(
        client, TEAM, said(rid, "question", "Is there a key safe?"), version_of(client, rid)
    )
    assert asked.status_code == 201, asked.text
    question = valid(fhir_validator, asked.json())
    assert asked.headers["location"].endswith(f"/fhir/R4/Communication/{question['id']}")
    assert client.get(asked.headers["location"], headers=GP).json() == question
    assert question["sender"]["identifier"]["value"] == "RXA01"
    [task] = tasks_of(client, rid, TEAM)
    assert (task["status"], task["businessStatus"]["coding"][0]["code"]) == (
        "on-hold",
        "info-requested",
    )
    assert client.get(f"/referrals/{rid}", headers=GP).json()["status"] == "info_requested"

    letter = client.post(
        f"/referrals/{rid}/attachments",
        params={"filename": "access.txt"},
        content=b"Key safe code 4512",
        headers={**GP, "content-type": "text/plain", "Idempotency-Key": str(uuid.uuid4())},
    ).json()
    document = {"contentAttachment": {"url": f"/referrals/{rid}/attachments/{letter['id']}"}}
    answer = said(
        rid,
        "answer",
        "Yes, see the letter",
        payload=[document],
        inResponseTo=[{"reference": f"Communication/{question['id']}"}],
    )
    answered = post(client, GP, answer, version_of(client, rid))
    assert answered.status_code == 201, answered.text
    reply = valid(fhir_validator, answered.json())
    assert reply["inResponseTo"] == [{"reference": f"Communication/{question['id']}"}]
    assert reply["payload"][1]["contentAttachment"]["url"].endswith(
        f"/referrals/{rid}/attachments/{letter['id']}"
    )
    [task] = tasks_of(client, rid, TEAM)
    assert (task["status"], task["businessStatus"]["coding"][0]["code"]) == (
        "requested",
        "info-provided",
    )
    accepted = patch_task(client, task, TEAM, status_to("accepted"))
    assert accepted.json()["status"] == "accepted"

    found = client.get(
        f"{BASE}/Communication", params={"based-on": f"ServiceRequest/{rid}"}, headers=GP
    )
    bundle = valid(fhir_validator, found.json())
    assert [e["resource"]["id"] for e in bundle["entry"]] == [question["id"], reply["id"]]
    assert client.get(f"{BASE}/Communication/{reply['id']}", headers=TEAM).json() == reply
    assert events(db_url)[-3:] == [
        "ReferralInfoRequested",
        "ReferralInfoProvided",
        "ReferralAccepted",
    ]
    history = client.get(f"/referrals/{rid}/history", headers=GP).json()
    assert history[-2]["attachment_id"] == letter["id"]


def test_messages_and_interim_updates_from_either_party(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = routed(client, db_url)
    [task] = tasks_of(client, rid, TEAM)
    patch_task(client, task, TEAM, status_to("accepted"))
    note = post(client, GP, said(rid, "message", "Daughter at home from 14:00"), 3)
    assert note.status_code == 201, note.text
    valid(fhir_validator, note.json())
    update = said(
        rid,
        "progress",
        "15:30 today",
        topic={"coding": [{"system": f"{OURS}/progress", "code": "visit-booked"}]},
        sender={"identifier": {"system": ODS, "value": "RXA01"}},
    )
    key = str(uuid.uuid4())
    first = post(client, TEAM, update, 4, key=key)
    assert first.status_code == 201, first.text
    progress = valid(fhir_validator, first.json())
    assert progress["topic"]["coding"][0]["code"] == "visit-booked"
    again = post(client, TEAM, update, 4, key=key)
    assert (again.status_code, again.json()) == (201, progress), "a retry is answered the same"
    assert events(db_url).count("ReferralProgressReported") == 1

    [task] = tasks_of(client, rid, GP)
    assert (task["status"], task["meta"]["versionId"]) == ("accepted", "5")
    only = client.get(
        f"{BASE}/Communication",
        params={"based-on": f"ServiceRequest/{rid}", "category": "progress"},
        headers=GP,
    ).json()
    assert [e["resource"]["id"] for e in only["entry"]] == [progress["id"]]


def test_refusals_are_operation_outcomes_naming_what_was_wrong(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = routed(client, db_url)
    question = said(rid, "question", "Is there a key safe?")

    def refused(response: Response, status: int, expression: str | None = None) -> str:
        body = valid(fhir_validator, outcome(response, status))
        if expression is not None:
            assert body["issue"][0].get("expression") == [expression], body
        return str(body["issue"][0]["diagnostics"])

    refused(post(client, TEAM, question, None), 428, "If-Match")
    no_key = client.post(
        f"{BASE}/Communication", json=question, headers={**TEAM, "If-Match": 'W/"2"'}
    )
    refused(no_key, 400, "Idempotency-Key")
    refused(post(client, TEAM, question, 1), 412)
    assert "request-info" in refused(post(client, GP, question, 2), 403)
    refused(post(client, STRANGER, question, 2), 404)
    refused(post(client, OPS, said(rid, "message", "hello"), 2), 403)
    refused(post(client, TEAM, said(rid, "gossip", "x"), 2), 422, "Communication.category")
    refused(
        post(client, TEAM, {**question, "priority": "urgent"}, 2), 400, "Communication.priority"
    )
    refused(
        post(client, TEAM, said(rid, "question"), 2), 422, "Communication.payload.contentString"
    )
    refused(post(client, GP, said(rid, "answer", "Yes"), 2), 409)
    elsewhere = said(
        rid,
        "message",
        "see letter",
        payload=[{"contentAttachment": {"url": "/referrals/x/attachments/y"}}],
    )
    refused(post(client, GP, elsewhere, 2), 422, "Communication.payload[1].contentAttachment.url")
    unknown = said(
        rid,
        "message",
        "see letter",
        payload=[{"contentAttachment": {"url": f"/referrals/{rid}/attachments/nope"}}],
    )
    refused(post(client, GP, unknown, 2), 422, "Communication.payload.contentAttachment.url")
    untopical = said(rid, "progress", "going well")
    patch_task(client, tasks_of(client, rid, TEAM)[0], TEAM, status_to("accepted"))
    refused(post(client, TEAM, untopical, 3), 422, "Communication.topic")
    other = said(
        rid, "progress", topic={"coding": [{"system": f"{OURS}/progress", "code": "other"}]}
    )
    refused(post(client, TEAM, other, 3), 422, "Communication.payload.contentString")
    stray = said(rid, "message", "hi", inResponseTo=[{"reference": "Communication/x-1"}])
    refused(post(client, GP, stray, 3), 422, "Communication.inResponseTo")
    impostor = said(rid, "message", "hi", sender={"identifier": {"system": ODS, "value": "B81001"}})
    refused(post(client, TEAM, impostor, 3), 422, "Communication.sender")
    refused(
        post(client, TEAM, {**question, "basedOn": [{"reference": "Task/1"}]}, 3),
        422,
        "Communication.basedOn",
    )
    assert events(db_url)[-1] == "ReferralAccepted", "nothing refused was stored"

    refused(client.get(f"{BASE}/Communication/{rid}-1", headers=GP), 404)  # a submission
    refused(client.get(f"{BASE}/Communication/nonsense", headers=GP), 404)
    refused(client.get(f"{BASE}/Communication", headers=GP), 400, "based-on")
    refused(
        client.get(f"{BASE}/Communication", params={"subject": "x"}, headers=GP), 400, "subject"
    )
    post(client, GP, said(rid, "message", "hi"), 3)
    hidden = client.get(
        f"{BASE}/Communication", params={"based-on": f"ServiceRequest/{rid}"}, headers=STRANGER
    )
    assert "entry" not in valid(fhir_validator, hidden.json()), "an empty searchset"


def without_nhs_number(client: TestClient) -> str:
    bundle = transaction_bundle()
    bundle["entry"][0]["resource"]["identifier"] = []
    response = write(client, "POST", "/", GP, bundle)
    assert response.status_code == 200, response.text
    return str(response.json()["entry"][1]["resource"]["id"])


def nhs_identifier(number: str, code: str | None) -> dict[str, Any]:
    ident: dict[str, Any] = {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": number}
    if code is not None:
        concept = {"coding": [{"system": VERIFICATION, "code": code}]}
        ident["extension"] = [{"url": VERIFICATION_EXT, "valueCodeableConcept": concept}]
    return ident


def test_the_assigned_organisation_records_a_traced_nhs_number_with_a_patient_update(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    rid = without_nhs_number(client)
    route(db_url, rid)
    patient = client.get(f"{BASE}/Patient/{rid}", headers=TEAM).json()
    assert "identifier" not in patient

    def put(who: dict[str, str], body: dict[str, Any], version: int = 2) -> Response:
        return write(client, "PUT", f"/Patient/{rid}", who, body, version=version)

    traced = {**copy.deepcopy(patient), "identifier": [nhs_identifier("9434765919", "01")]}
    refused = outcome(put(TEAM, {**traced, "name": [{"text": "Someone Else"}]}), 422)
    assert refused["issue"][0]["expression"] == ["Patient.name"]
    assert outcome(put(TEAM, patient), 422)["issue"][0]["expression"] == ["Patient.identifier"]
    bad = {**patient, "identifier": [nhs_identifier("9434765918", "01")]}
    assert outcome(put(TEAM, bad), 422)["issue"][0]["expression"] == ["Patient.identifier.value"]
    outcome(put(STRANGER, traced), 404)
    outcome(put(OPS, traced), 403)
    outcome(put(TEAM, traced, version=1), 412)
    outcome(write(client, "PUT", f"/Patient/{rid}", TEAM, traced), 428)
    outcome(put(TEAM, {**traced, "id": "other"}), 400)
    assert events(db_url) == ["ReferralSubmitted"], "nothing refused was stored"

    recorded = put(TEAM, traced)
    assert recorded.status_code == 200, recorded.text
    assert recorded.headers["etag"] == 'W/"3"'
    shown = valid(fhir_validator, recorded.json())
    [ident] = shown["identifier"]
    assert ident == nhs_identifier("9434765919", "01") | {"extension": ident["extension"]}
    assert ident["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "01"
    plain = client.get(f"/referrals/{rid}", headers=GP).json()["patient"]
    assert (plain["nhs_number"], plain["nhs_number_verification"]) == ("9434765919", "verified")
    history = client.get(f"/referrals/{rid}/history", headers=GP).json()
    assert (history[-1]["action"], history[-1]["actor_org"]) == ("record-nhs-number", "RXA01")
    assert events(db_url) == ["ReferralSubmitted", "ReferralNhsNumberRecorded"]

    unchanged = {k: v for k, v in shown.items() if k != "meta"}
    assert "already" in outcome(put(GP, unchanged, version=3), 422)["issue"][0]["diagnostics"]
    unverified = {**unchanged, "identifier": [nhs_identifier("9434765919", None)]}
    by_referrer = put(GP, unverified, version=3)
    assert by_referrer.status_code == 200, by_referrer.text
    code = by_referrer.json()["identifier"][0]["extension"][0]["valueCodeableConcept"]
    assert code["coding"][0]["code"] == "02", "without the extension: present but not traced"
