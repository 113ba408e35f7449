"""Identity without an NHS number and the sharing basis on the FHIR face: a social-care
referral for a person known only by a local identifier, with its Consent, in and out, valid
against base R4 (HAPI FHIR validator)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from devstack.fhir_validator import FhirValidator
from fastapi.testclient import TestClient

from .fhir_support import BASE, GP, ODS, OURS, outcome, transaction_bundle, write

UK_CORE = "https://fhir.hl7.org.uk"
VERIFICATION_EXT = f"{UK_CORE}/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
VERIFICATION = f"{UK_CORE}/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
LOCAL_ID = "https://referral-exchange.example/fhir/Id/local-patient-identifier"
LOCAL = {
    "system": LOCAL_ID,
    "value": "SC-204817",
    "assigner": {"type": "Organization", "identifier": {"system": ODS, "value": "SCB01"}},
}
CONSENT = {
    "resourceType": "Consent",
    "id": "consent",
    "status": "active",
    "scope": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                "code": "patient-privacy",
            }
        ]
    },
    "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
    "dateTime": "2026-11-22T08:30:00Z",
    "policyRule": {"coding": [{"system": f"{OURS}/sharing-basis", "code": "best-interests"}]},
}
SOCIAL_CARE = {"coding": [{"system": f"{OURS}/service-type", "code": "social-care-assessment"}]}


def social_care_bundle(patient_identifiers: list[dict[str, Any]], consent: bool) -> dict[str, Any]:
    extra: dict[str, Any] = {"code": SOCIAL_CARE, "category": []}
    if consent:
        extra |= {
            "contained": [copy.deepcopy(CONSENT)],
            "supportingInfo": [{"reference": "#consent"}],
        }
    bundle = transaction_bundle(**extra)
    bundle["entry"][0]["resource"]["identifier"] = patient_identifiers
    return bundle


def test_a_person_known_by_a_local_identifier_referred_to_social_care_with_consent(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    response = write(client, "POST", "/", GP, social_care_bundle([LOCAL], consent=True))
    assert response.status_code == 200, response.text
    rid = response.json()["entry"][1]["resource"]["id"]

    patient = client.get(f"{BASE}/Patient/{rid}", headers=GP).json()
    assert fhir_validator.errors(patient) == []
    assert patient["identifier"] == [LOCAL], "no NHS number identifier: it is absent"
    sr = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP).json()
    assert fhir_validator.errors(sr) == []
    [consent] = [c for c in sr["contained"] if c["resourceType"] == "Consent"]
    assert sr["supportingInfo"] == [{"reference": "#consent"}]
    assert consent["policyRule"]["coding"][0]["code"] == "best-interests"
    assert consent["dateTime"] == "2026-11-22T08:30:00Z"
    assert consent["organization"][0]["identifier"]["value"] == "B81001", "who recorded it"

    plain = client.get(f"/referrals/{rid}", headers=GP).json()
    assert plain["patient"]["nhs_number_verification"] == "absent"
    assert plain["consent"]["basis"] == "best-interests"

    # The ServiceRequest as read goes back with a PUT: the contained Consent is understood.
    amended = {**sr, "priority": "asap"}
    put = write(client, "PUT", f"/ServiceRequest/{rid}", GP, amended, version=1)
    assert put.status_code == 200, put.text
    assert client.get(f"/referrals/{rid}", headers=GP).json()["consent"] == plain["consent"]


def test_the_nhs_number_carries_its_verification_status_as_uk_core_codes(
    client: TestClient, fhir_validator: FhirValidator
) -> None:
    verified = {
        "extension": [
            {
                "url": VERIFICATION_EXT,
                "valueCodeableConcept": {"coding": [{"system": VERIFICATION, "code": "01"}]},
            }
        ],
        "system": "https://fhir.nhs.uk/Id/nhs-number",
        "value": "9434765919",
    }
    response = write(client, "POST", "/", GP, social_care_bundle([verified, LOCAL], consent=True))
    assert response.status_code == 200, response.text
    rid = response.json()["entry"][1]["resource"]["id"]
    patient = client.get(f"{BASE}/Patient/{rid}", headers=GP).json()
    assert fhir_validator.errors(patient) == []
    nhs, local = patient["identifier"]
    coding = nhs["extension"][0]["valueCodeableConcept"]["coding"][0]
    assert (nhs["value"], coding["code"], local["value"]) == ("9434765919", "01", "SC-204817")
    assert (
        client.get(f"/referrals/{rid}", headers=GP).json()["patient"]["nhs_number_verification"]
        == "verified"
    )


@pytest.mark.parametrize(
    ("identifiers", "consent", "expression"),
    [
        ([LOCAL], False, "ServiceRequest.supportingInfo"),
        ([{**LOCAL, "assigner": None}], True, "Patient.identifier[0].assigner"),
        ([{"system": "https://example.org/mrn", "value": "1"}], True, "Patient.identifier[0]"),
    ],
    ids=["social-care-without-consent", "local-id-without-issuer", "unknown-identifier"],
)
def test_what_is_missing_or_unknown_is_an_operation_outcome_naming_the_element(
    client: TestClient,
    fhir_validator: FhirValidator,
    identifiers: list[dict[str, Any]],
    consent: bool,
    expression: str,
) -> None:
    cleaned = [{k: v for k, v in i.items() if v is not None} for i in identifiers]
    response = write(client, "POST", "/", GP, social_care_bundle(cleaned, consent))
    body = outcome(response, 422)
    assert fhir_validator.errors(body) == []
    assert expression in body["issue"][0]["expression"][0], body
