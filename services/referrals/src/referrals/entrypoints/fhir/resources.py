"""Referrals and their assignments as FHIR R4 resources (ServiceRequest, Patient, Task).

Built as plain JSON-ready dicts: these are on every read, search and create, and a model
library's objects cost tens of times more CPU to build and serialise (bench/RESULTS.md). The
HAPI FHIR validator checks every kind of resource built here in the tests, and docs/fhir.md
documents each element (a test keeps the table and this module in step)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ...service_layer.versions import AssignmentVersion, ReferralVersion
from . import codes, identity

Json = dict[str, Any]


def instant(value: datetime) -> str:
    """A FHIR instant (UTC, with its zone)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def meta(version: int, updated_at: datetime) -> Json:
    return {"versionId": str(version), "lastUpdated": instant(updated_at)}


def etag(version: int) -> str:
    return f'W/"{version}"'


def organisation(ods: str) -> Json:
    """A reference to an organisation by its ODS code (we serve no Organization resources)."""
    return {"type": "Organization", "identifier": {"system": codes.ODS_CODE, "value": ods}}


def coding(system: str, code: str, display: str | None = None) -> Json:
    found = {"system": system, "code": code}
    if display:
        found["display"] = display
    return found


def service_request(found: ReferralVersion) -> Json:
    r = found.referral
    category = [{"coding": [codes.REFERRAL_CATEGORY]}]
    category += [
        {"coding": [coding(codes.COHORT, flag.replace("_", "-"))]}
        for flag, on in r.cohort.model_dump().items()
        if on
    ]
    service = [coding(codes.SERVICE_TYPE, r.service_type.value)]
    if r.service_type in codes.SERVICE_TYPE_SNOMED:
        service.insert(0, coding(codes.SNOMED, *codes.SERVICE_TYPE_SNOMED[r.service_type]))
    requester: Json = {"resourceType": "PractitionerRole", "id": "requester"}
    if r.practitioner:
        requester["practitioner"] = {
            "identifier": {"system": codes.PRACTITIONER, "value": r.practitioner}
        }
    requester["organization"] = organisation(r.referrer_org)
    resource: Json = {
        "resourceType": "ServiceRequest",
        "id": r.id,
        "meta": meta(r.version, found.updated_at),
        "contained": [requester],
        "status": codes.SERVICE_REQUEST_STATUS[r.status],
        "intent": "order",
        "category": category,
        "priority": r.priority.value,
        "code": {"coding": service},
        "subject": {"reference": f"Patient/{r.id}"},
        "occurrencePeriod": {"end": instant(r.due_at)},
        "authoredOn": instant(r.created_at),
        "requester": {"reference": "#requester"},
    }
    if r.identifier is not None:
        resource["identifier"] = [{"system": r.identifier.system, "value": r.identifier.value}]
    if r.assigned_provider_type is not None:
        resource["performerType"] = {
            "coding": [coding(codes.PROVIDER_TYPE, r.assigned_provider_type.value)]
        }
    if r.reason_code or r.reason_text:
        reason: Json = {}
        if r.reason_code:
            reason["coding"] = [coding(codes.SNOMED, r.reason_code)]
        if r.reason_text:
            reason["text"] = r.reason_text
        resource["reasonCode"] = [reason]
    if r.clinical_summary:
        resource["note"] = [{"text": r.clinical_summary}]
    supporting = [{"reference": f"DocumentReference/{d}"} for d in found.documents]
    if r.consent is not None:
        resource["contained"].append(identity.consent(r.consent, r.id))
        supporting.insert(0, {"reference": f"#{identity.CONSENT_ID}"})
    if supporting:
        resource["supportingInfo"] = supporting
    system = codes.END_REASON_SYSTEMS.get(r.status)
    if system and (found.cancel_reason or found.end_code):
        concept: Json = {}
        if found.end_code:
            concept["coding"] = [coding(system, found.end_code)]
        if found.cancel_reason:
            concept["text"] = found.cancel_reason
        resource["extension"] = [
            {"url": codes.STATUS_REASON_EXTENSION, "valueCodeableConcept": concept}
        ]
    return resource


def patient(found: ReferralVersion) -> Json:
    """The patient as the referral records them, at ``Patient/{referral id}``: the platform
    keeps no patient index, each referral its own copy of the details it was sent."""
    p = found.referral.patient
    resource: Json = {
        "resourceType": "Patient",
        "id": found.referral.id,
        "meta": meta(found.referral.version, found.updated_at),
    }
    if extensions := identity.patient_extensions(p):
        resource["extension"] = extensions
    if identifiers := identity.identifiers(p):
        resource["identifier"] = identifiers
    if p.name:
        resource["name"] = [{"text": p.name}]
    if p.birth_date:
        resource["birthDate"] = p.birth_date
    resource["address"] = [{"postalCode": p.postcode}]
    return resource


def task(found: AssignmentVersion) -> Json:
    r, state = found.referral, found.state
    resource: Json = {
        "resourceType": "Task",
        "id": found.id,
        "meta": meta(found.version, found.updated_at),
        "status": state.status.value,
        "businessStatus": {"coding": [coding(codes.REFERRAL_STATUS, state.business_status)]},
        "intent": "order",
        "priority": r.priority.value,
        "code": {"coding": [coding(codes.TASK_CODE, "fulfill", "Fulfill the focal request")]},
        "focus": {"reference": f"ServiceRequest/{r.id}"},
        "for": {"reference": f"Patient/{r.id}"},
        "authoredOn": instant(found.opened_at),
        "lastModified": instant(found.updated_at),
        "requester": organisation(r.referrer_org),
        "owner": organisation(found.organisation),
        "restriction": {"period": {"end": instant(r.due_at)}},
    }
    if state.reason_code or state.reason_text:
        system = codes.STATUS_REASON_SYSTEMS.get(state.business_status, codes.END_REASON)
        reason: Json = {}
        if state.reason_code:
            reason["coding"] = [coding(system, state.reason_code)]
        if state.reason_text:
            reason["text"] = state.reason_text
        resource["statusReason"] = reason
    if state.outcome:
        value: Json = {"coding": [coding(codes.OUTCOME, state.outcome)]}
        if state.outcome_text:
            value["text"] = state.outcome_text
        resource["output"] = [
            {
                "type": {"coding": [coding(codes.TASK_OUTPUT, "outcome", "Outcome")]},
                "valueCodeableConcept": value,
            }
        ]
    return resource
