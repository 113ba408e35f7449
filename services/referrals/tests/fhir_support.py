"""Helpers of the FHIR interface's tests: requests as a FHIR system sends them, referrals routed
as the consumer records routing's decisions."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from referrals.bootstrap import bootstrap
from referrals.config import Settings
from rx_contracts import ProviderType

BASE = "/fhir/R4"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
OURS = "https://referral-exchange.example/fhir/CodeSystem"
GP = {"X-Organisation": "B81001", "X-Roles": "provider", "X-Practitioner": "G1234567"}
TEAM = {"X-Organisation": "RXA01", "X-Roles": "provider"}
OTHER_TEAM = {"X-Organisation": "RXA02", "X-Roles": "provider"}
OPS = {"X-Organisation": "RX0PS", "X-Roles": "ops"}
STRANGER = {"X-Organisation": "L81002", "X-Roles": "provider"}

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": NHS, "value": "9434765919"}],
    "name": [{"given": ["Alex"], "family": "Smith"}],
    "birthDate": "1941-03-07",
    "address": [{"postalCode": "BS5 0AA"}],
}
SERVICE_REQUEST = {
    "resourceType": "ServiceRequest",
    "status": "active",
    "intent": "order",
    "category": [{"coding": [{"system": f"{OURS}/cohort", "code": "frailty"}]}],
    "priority": "urgent",
    "code": {"coding": [{"system": f"{OURS}/service-type", "code": "urgent-community-response"}]},
    "reasonCode": [
        {"coding": [{"system": "http://snomed.info/sct", "code": "129839007"}], "text": "Fall"}
    ],
    "subject": {"reference": "urn:uuid:9a1f0c1e-0000-4000-8000-000000000001"},
    "requester": {"type": "Organization", "identifier": {"system": ODS, "value": "B81001"}},
    "note": [{"text": "Lives alone; fell twice this week"}],
}


BAD_IDENTIFIERS: list[dict[str, Any]] = [
    {"value": "X-1"},
    {"system": "https://sender.example/ids"},
    {"system": "https://a|b", "value": "X-1"},
    {"system": "https://sender.example/ids", "value": "X-1", "assigner": {"display": "system"}},
    {"system": "https://sender.example/ids", "value": "X" * 201},
]
"""A sender's identifiers refused (422): a part missing, a ``|`` in the system, more than a
system and a value, a value too long."""


def transaction_bundle(**service_request: Any) -> dict[str, Any]:
    patient_url = "urn:uuid:9a1f0c1e-0000-4000-8000-000000000001"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": copy.deepcopy(PATIENT),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:9a1f0c1e-0000-4000-8000-000000000002",
                "resource": {**copy.deepcopy(SERVICE_REQUEST), **service_request},
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
        ],
    }


def contained_service_request() -> dict[str, Any]:
    """A ServiceRequest POSTed on its own: the Patient contained in it."""
    return {
        **copy.deepcopy(SERVICE_REQUEST),
        "contained": [{**copy.deepcopy(PATIENT), "id": "patient"}],
        "subject": {"reference": "#patient"},
    }


def write(
    client: TestClient,
    method: str,
    path: str,
    who: dict[str, str],
    body: Any,
    version: int | None = None,
    key: str | None = None,
    content_type: str = "application/fhir+json",
) -> Response:
    headers = {
        **who,
        "Idempotency-Key": key or str(uuid.uuid4()),
        "Content-Type": content_type,
    }
    if version is not None:
        headers["If-Match"] = f'W/"{version}"'
    return client.request(method, f"{BASE}{path}", json=body, headers=headers)


def create(client: TestClient, **service_request: Any) -> str:
    """A new referral through a transaction Bundle; its id."""
    response = write(client, "POST", "/", GP, transaction_bundle(**service_request))
    assert response.status_code == 200, response.text
    return str(response.json()["entry"][1]["resource"]["id"])


def route(db_url: str, referral_id: str, org: str = "RXA01") -> None:
    """Record routing's decision as the referrals consumer does."""
    with bootstrap(Settings(database_url=db_url)).uow() as uow:
        referral = uow.referrals.get(referral_id)
        assert referral is not None
        referral.record_routing(
            org, ProviderType.RAPID_RESPONSE, datetime.now(UTC), f"ev-{uuid.uuid4()}"
        )
        uow.commit()


def tasks(client: TestClient, referral_id: str, who: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(
        f"{BASE}/Task", params={"focus": f"ServiceRequest/{referral_id}"}, headers=who
    )
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


def patch_task(
    client: TestClient,
    task: dict[str, Any],
    who: dict[str, str],
    operations: list[dict[str, Any]],
    version: int | None = None,
) -> Response:
    return write(
        client,
        "PATCH",
        f"/Task/{task['id']}",
        who,
        operations,
        version=int(task["meta"]["versionId"]) if version is None else version,
        content_type="application/json-patch+json",
    )


def status_to(status: str, **more: Any) -> list[dict[str, Any]]:
    ops = [{"op": "replace", "path": "/status", "value": status}]
    return ops + [{"op": "add", "path": f"/{name}", "value": value} for name, value in more.items()]


def outcome(response: Response, status: int) -> dict[str, Any]:
    """The OperationOutcome of a failed call, checked for the FHIR shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"], body
    return body


BARS_EVENTS = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
BARS_REASONS = "https://fhir.nhs.uk/CodeSystem/message-reason-bars"


def message(
    reason: str, service_request: dict[str, Any], patient: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A BaRS-style message Bundle: MessageHeader (servicerequest-request, ``reason``), the
    ServiceRequest it is about and, if given, the Patient."""
    sr_url, patient_url = (
        f"urn:uuid:{uuid.uuid4()}",
        "urn:uuid:9a1f0c1e-0000-4000-8000-000000000001",
    )
    header = {
        "resourceType": "MessageHeader",
        "id": str(uuid.uuid4()),
        "eventCoding": {"system": BARS_EVENTS, "code": "servicerequest-request"},
        "reason": {"coding": [{"system": BARS_REASONS, "code": reason}]},
        "source": {"endpoint": "https://gp-system.example/fhir"},
        "destination": [{"endpoint": "https://exchange.example/fhir/R4"}],
        "focus": [{"reference": sr_url}],
    }
    entries = [
        {"fullUrl": f"urn:uuid:{header['id']}", "resource": header},
        {"fullUrl": sr_url, "resource": service_request},
    ]
    if patient is not None:
        entries.append({"fullUrl": patient_url, "resource": patient})
    return {"resourceType": "Bundle", "type": "message", "entry": entries}
