"""No conditional create: a create that asks for one (``If-None-Exist``, or a transaction
entry's ``request.ifNoneExist``) is refused with 412 and an OperationOutcome, as FHIR R4 has a
server without conditional create answer, and nothing is stored; the Idempotency-Key is what
makes a retry safe."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from devstack.fhir_validator import FhirValidator
from fastapi.testclient import TestClient
from httpx import Response
from referrals.adapters.tables import AttachmentRow
from rx_contracts.topics import REFERRAL_EVENTS
from sqlmodel import Session, select

from .fhir_support import (
    BASE,
    GP,
    PATIENT,
    SERVICE_REQUEST,
    TEAM,
    contained_service_request,
    create,
    message,
    outcome,
    route,
    transaction_bundle,
)
from .test_fhir import topics, valid

CONDITION = "identifier=https://gp-system.example/referrals|R-1"


def _communication(rid: str) -> dict[str, Any]:
    return {
        "resourceType": "Communication",
        "basedOn": [{"reference": f"ServiceRequest/{rid}"}],
        "status": "completed",
        "category": [
            {
                "coding": [
                    {
                        "system": "https://referral-exchange.example/fhir/CodeSystem/"
                        "communication-category",
                        "code": "message",
                    }
                ]
            }
        ],
        "payload": [{"contentString": "Key safe code 4512"}],
    }


def _document(rid: str) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "data": base64.b64encode(b"Key safe code 4512").decode(),
                    "title": "letter.txt",
                }
            }
        ],
        "context": {"related": [{"reference": f"ServiceRequest/{rid}"}]},
    }


# Each create: its path, who sends it, its body (given a routed referral), the status it gets.
CREATES: dict[str, tuple[str, dict[str, str], Callable[[str], Any], int]] = {
    "ServiceRequest": ("/ServiceRequest", GP, lambda rid: contained_service_request(), 201),
    "transaction": ("/", GP, lambda rid: transaction_bundle(), 200),
    "message": (
        "/$process-message",
        GP,
        lambda rid: message("new", dict(SERVICE_REQUEST), dict(PATIENT)),
        200,
    ),
    "Communication": ("/Communication", TEAM, _communication, 201),
    "DocumentReference": ("/DocumentReference", TEAM, _document, 201),
}


def _post(client: TestClient, kind: str, rid: str, key: str, **more: str) -> Response:
    path, who, body, _ = CREATES[kind]
    headers = {**who, "Idempotency-Key": key, "Content-Type": "application/fhir+json", **more}
    if kind == "Communication":  # a Communication names the referral's version
        read = client.get(f"{BASE}/ServiceRequest/{rid}", headers=who)
        headers["If-Match"] = read.headers["etag"]
    return client.post(f"{BASE}{path}", json=body(rid), headers=headers)


def _stored(client: TestClient, db_url: str) -> tuple[Any, ...]:
    """What a create could have stored: referral events staged, attachments."""
    engine = client.app.state.container.engine  # type: ignore[attr-defined]
    with Session(engine) as s:
        attachments = tuple(s.exec(select(AttachmentRow.id)))
    events = tuple(t for t in topics(db_url) if t[0] == REFERRAL_EVENTS)
    return events, attachments


@pytest.mark.parametrize("kind", CREATES)
def test_a_conditional_create_is_refused_with_412_and_nothing_is_stored(
    client: TestClient, db_url: str, fhir_validator: FhirValidator, kind: str
) -> None:
    rid = create(client)
    route(db_url, rid)
    created = CREATES[kind][3]
    before = _stored(client, db_url)
    key = str(uuid.uuid4())

    refused = _post(client, kind, rid, key, **{"If-None-Exist": CONDITION})
    answer = valid(fhir_validator, outcome(refused, 412))
    [issue] = answer["issue"]
    assert issue["code"] == "not-supported"
    assert issue["expression"] == ["If-None-Exist"]
    assert "not supported" in issue["diagnostics"]
    assert "Idempotency-Key" in issue["diagnostics"]
    assert _stored(client, db_url) == before, "nothing stored, no event staged"

    # The key was not spent on the refusal: the same request without the header is made once.
    made = _post(client, kind, rid, key)
    assert made.status_code == created, made.text
    assert "idempotent-replayed" not in made.headers
    assert _stored(client, db_url) != before


def test_a_transaction_entry_asking_for_a_conditional_create_is_refused(
    client: TestClient, db_url: str, fhir_validator: FhirValidator
) -> None:
    bundle = transaction_bundle()
    bundle["entry"][0]["request"]["ifNoneExist"] = (
        "identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"
    )
    headers = {**GP, "Idempotency-Key": str(uuid.uuid4())}
    answer = valid(
        fhir_validator, outcome(client.post(f"{BASE}/", json=bundle, headers=headers), 412)
    )
    [issue] = answer["issue"]
    assert issue["code"] == "not-supported"
    assert issue["expression"] == ["Bundle.entry[0].request.ifNoneExist"]
    assert topics(db_url) == []


def test_the_capability_statement_says_there_is_no_conditional_create(
    client: TestClient,
) -> None:
    statement = client.get(f"{BASE}/metadata").json()
    resources = statement["rest"][0]["resource"]
    assert resources and not any(r["conditionalCreate"] for r in resources)
    assert "If-None-Exist" in statement["rest"][0]["documentation"]
