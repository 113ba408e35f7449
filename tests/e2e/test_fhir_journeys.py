"""Journeys driven over the FHIR interface by a real FHIR client library (fhirpy), through the
real processes and broker: routing's decisions arrive as Tasks with an owner."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from devstack.stack import Stack
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound

from .conftest import ACCESS, as_client, audit_entries, gp, timeline, token, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

OURS = "https://referral-exchange.example/fhir/CodeSystem"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


@pytest.fixture
def fhir_stack(shared_stack: Stack) -> Stack:
    """The shared stack (each journey uses its own referrals)."""
    return shared_stack


def client(stack: Stack, org: str, **headers: str) -> SyncFHIRClient:
    """A FHIR client acting as ``org``'s system; a write also sends a fresh Idempotency-Key
    (and whatever else ``headers`` adds), so each write gets a client of its own."""
    return SyncFHIRClient(
        f"{stack.url('referrals')}/fhir/R4",
        authorization=f"Bearer {token(stack.url('issuer'), org.lower(), 'referrals')}",
        extra_headers={"Idempotency-Key": str(uuid.uuid4()), **headers},
    )


def refer(stack: Stack) -> str:
    """The GP practice B81001 sends a referral as a transaction Bundle; its id."""
    practitioner = gp(stack)["X-Practitioner"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:5b0c3f5e-1111-4000-8000-000000000001",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [
                        {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}
                    ],
                    "address": [{"postalCode": "BS5 0AA"}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "active",
                    "intent": "order",
                    "priority": "urgent",
                    "code": {
                        "coding": [
                            {"system": f"{OURS}/service-type", "code": "urgent-community-response"}
                        ]
                    },
                    "subject": {"reference": "urn:uuid:5b0c3f5e-1111-4000-8000-000000000001"},
                    "requester": {
                        "type": "Organization",
                        "identifier": {"system": ODS, "value": "B81001"},
                    },
                },
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
        ],
    }
    answer = client(stack, "B81001", **{"X-Practitioner": practitioner}).execute(
        "", method="post", data=bundle
    )
    assert answer["type"] == "transaction-response"
    return str(answer["entry"][1]["resource"]["id"])


def open_task(stack: Stack, referral_id: str, org: str) -> Any:
    """Wait for routing to give the referral to ``org``: its Task, requested."""
    fhir = client(stack, org)

    def probe() -> Any:
        found = (
            fhir.resources("Task")
            .search(focus=f"ServiceRequest/{referral_id}", owner=org, status="requested")
            .fetch()
        )
        return found[0] if found else None

    return wait_for(f"a Task of {referral_id} owned by {org}", probe, timeout=30)


def move(stack: Stack, task: Any, org: str, status: str, **more: Any) -> Any:
    """JSON Patch the Task's status (and more) with its ETag as If-Match."""
    ops = [{"op": "replace", "path": "/status", "value": status}]
    ops += [{"op": "add", "path": f"/{name}", "value": value} for name, value in more.items()]
    fhir = client(
        stack,
        org,
        **{
            "If-Match": f'W/"{task["meta"]["versionId"]}"',
            "Content-Type": "application/json-patch+json",
        },
    )
    return fhir.execute(f"Task/{task['id']}", method="patch", data=ops)


def test_a_referral_is_accepted_started_and_completed_over_fhir(fhir_stack: Stack) -> None:
    rid = refer(fhir_stack)
    task = open_task(fhir_stack, rid, "RXA01")
    assert task["owner"]["identifier"]["value"] == "RXA01"
    task = move(fhir_stack, task, "RXA01", "accepted")
    task = move(fhir_stack, task, "RXA01", "in-progress")
    outcome = {
        "type": {"text": "Outcome"},
        "valueCodeableConcept": {
            "coding": [{"system": f"{OURS}/outcome", "code": "remained-at-home"}],
            "text": "Mobilising safely",
        },
    }
    done = move(fhir_stack, task, "RXA01", "completed", output=[outcome])
    assert done["status"] == "completed"
    service_request = client(fhir_stack, "B81001").reference("ServiceRequest", rid).to_resource()
    assert service_request["status"] == "completed"


def test_a_rejection_gives_the_next_organisation_a_new_task(fhir_stack: Stack) -> None:
    rid = refer(fhir_stack)
    first = open_task(fhir_stack, rid, "RXA01")
    reason = {
        "coding": [{"system": f"{OURS}/rejection-reason", "code": "not-available-within-timescale"}]
    }
    move(fhir_stack, first, "RXA01", "rejected", statusReason=reason)
    second = open_task(fhir_stack, rid, "RXA02")
    assert second["id"] != first["id"]
    seen_by_referrer = (
        client(fhir_stack, "B81001").resources("Task").search(focus=f"ServiceRequest/{rid}").fetch()
    )
    assert [(t["owner"]["identifier"]["value"], t["status"]) for t in seen_by_referrer] == [
        ("RXA01", "rejected"),
        ("RXA02", "requested"),
    ]


def test_a_redirect_naming_a_provider_type_and_an_organisation_goes_to_the_organisation(
    fhir_stack: Stack,
) -> None:
    # As with the JSON API's redirect: with both named, routing gives the referral to the
    # organisation, whatever its type (RXA02 is a rapid-response team, not acute).
    rid = refer(fhir_stack)
    task = open_task(fhir_stack, rid, "RXA01")
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "reason", "valueString": "Known to the Northside team"},
            {
                "name": "provider-type",
                "valueCoding": {"system": f"{OURS}/provider-type", "code": "acute"},
            },
            {"name": "organization", "valueIdentifier": {"system": ODS, "value": "RXA02"}},
        ],
    }
    owner = client(fhir_stack, "RXA01", **{"If-Match": f'W/"{task["meta"]["versionId"]}"'})
    ended = owner.execute(f"Task/{task['id']}/$redirect", method="post", data=parameters)
    assert (ended["status"], ended["businessStatus"]["coding"][0]["code"]) == (
        "rejected",
        "redirected",
    )
    second = open_task(fhir_stack, rid, "RXA02")
    assert second["id"] != task["id"]
    service_request = client(fhir_stack, "RXA02").reference("ServiceRequest", rid).to_resource()
    assert service_request["performerType"]["coding"][0]["code"] == "rapid-response"


def test_revoking_the_service_request_cancels_the_referral_and_its_task(
    fhir_stack: Stack,
) -> None:
    rid = refer(fhir_stack)
    task = open_task(fhir_stack, rid, "RXA01")
    service_request = client(fhir_stack, "B81001").reference("ServiceRequest", rid).to_resource()
    service_request["status"] = "revoked"
    service_request["extension"] = [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/request-statusReason",
            "valueCodeableConcept": {"text": "Admitted overnight"},
        }
    ]
    version = service_request["meta"]["versionId"]
    writer = client(fhir_stack, "B81001", **{"If-Match": f'W/"{version}"'})
    revoked = writer.resource("ServiceRequest", **service_request).save()  # PUT: it has an id
    assert revoked["status"] == "revoked"
    cancelled = client(fhir_stack, "B81001").reference("Task", task["id"]).to_resource()
    assert cancelled["status"] == "cancelled"
    assert cancelled["statusReason"]["text"] == "Admitted overnight"


def test_a_stale_version_is_refused_with_412(fhir_stack: Stack) -> None:
    rid = refer(fhir_stack)
    task = open_task(fhir_stack, rid, "RXA01")
    move(fhir_stack, task, "RXA01", "accepted")
    with pytest.raises(MultipleResourcesFound) as refused:  # fhirpy's name for any 412
        move(fhir_stack, task, "RXA01", "in-progress")  # still the version before accepting
    assert "OperationOutcome" in str(refused.value)


def communication(rid: str, kind: str, text: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Communication",
        "basedOn": [{"reference": f"ServiceRequest/{rid}"}],
        "status": "completed",
        "category": [{"coding": [{"system": f"{OURS}/communication-category", "code": kind}]}],
        "payload": [{"contentString": text}],
        **more,
    }


def test_a_question_is_answered_and_the_same_team_accepts_over_fhir(fhir_stack: Stack) -> None:
    rid = refer(fhir_stack)
    task = open_task(fhir_stack, rid, "RXA01")
    ask = client(fhir_stack, "RXA01", **{"If-Match": f'W/"{task["meta"]["versionId"]}"'})
    question = ask.execute(
        "Communication", method="post", data=communication(rid, "question", "Key safe code?")
    )
    held = client(fhir_stack, "RXA01").reference("Task", task["id"]).to_resource()
    assert held["status"] == "on-hold"

    referrer = client(fhir_stack, "B81001")
    found = referrer.resources("Communication").search(**{"based-on": f"ServiceRequest/{rid}"})
    assert [c["id"] for c in found.fetch()] == [question["id"]]
    version = referrer.reference("ServiceRequest", rid).to_resource()["meta"]["versionId"]
    answer = communication(
        rid,
        "answer",
        "4512",
        inResponseTo=[{"reference": f"Communication/{question['id']}"}],
    )
    reply = client(fhir_stack, "B81001", **{"If-Match": f'W/"{version}"'}).execute(
        "Communication", method="post", data=answer
    )
    assert reply["inResponseTo"] == answer["inResponseTo"]

    offered = client(fhir_stack, "RXA01").reference("Task", task["id"]).to_resource()
    assert offered["status"] == "requested", "the same team holds it again"
    assert move(fhir_stack, offered, "RXA01", "accepted")["status"] == "accepted"
    wanted = ["ReferralInfoRequested", "ReferralInfoProvided", "ReferralAccepted"]
    wait_for(
        "the question, the answer and the acceptance on the audit timeline",
        lambda: [t for t in timeline(fhir_stack, rid) if t in wanted] == wanted,
        timeout=30,
        every=0.5,
    )


def test_the_assigned_team_follows_the_referral_s_documents_over_fhir(fhir_stack: Stack) -> None:
    rid = refer(fhir_stack)
    open_task(fhir_stack, rid, "RXA01")
    uploaded = httpx.post(
        f"{fhir_stack.url('referrals')}/referrals/{rid}/attachments",
        params={"filename": "letter.txt"},
        content=b"Key safe code 4512",
        headers={
            **gp(fhir_stack),
            "content-type": "text/plain",
            "Idempotency-Key": str(uuid.uuid4()),
        },
        timeout=10,
    )
    assert uploaded.status_code == 201, uploaded.text

    team = client(fhir_stack, "RXA01")
    sr = team.reference("ServiceRequest", rid).to_resource()
    [named] = [s["reference"] for s in sr["supportingInfo"]]
    assert named == f"DocumentReference/{uploaded.json()['id']}"
    document = team.reference(*named.split("/")).to_resource()
    attachment = document["content"][0]["attachment"]
    assert (attachment["title"], attachment["contentType"]) == ("letter.txt", "text/plain")
    listed = team.resources("DocumentReference").search(related=f"ServiceRequest/{rid}").fetch()
    assert [d["id"] for d in listed] == [document["id"]]
    raw = httpx.get(attachment["url"], headers=as_client(fhir_stack, "rxa01"), timeout=10)
    assert (raw.status_code, raw.content) == (200, b"Key safe code 4512")

    def reads() -> list[str]:
        entries = audit_entries(fhir_stack, rid, with_reads=True)
        return sorted(e["payload"]["accessed"] for e in entries if e["type"] == ACCESS)

    wait_for(
        "the document reads on the audit stream",
        lambda: (
            [a for a in reads() if a.startswith("attachment")]
            == ["attachment", "attachment-list", "attachment-list"]
        ),
        timeout=30,
        every=0.5,
    )
