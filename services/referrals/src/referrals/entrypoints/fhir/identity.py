"""The person's identity and the referral's sharing basis in FHIR, both ways.

- NHS number: ``Patient.identifier`` (``https://fhir.nhs.uk/Id/nhs-number``) with UK Core's
  NHS number verification status extension (01 verified, 02 present but not traced); absent:
  no such identifier.
- Local identifier: a second ``Patient.identifier`` in ``…/Id/local-patient-identifier`` whose
  ``assigner`` is the issuing organisation by ODS code.
- National data opt-out: a boolean extension on the Patient.
- Sharing basis: a ``Consent`` contained in the ServiceRequest and named by its
  ``supportingInfo``: ``policyRule`` in ``…/CodeSystem/sharing-basis``, ``dateTime`` when it
  was recorded, ``organization`` the organisation that recorded it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rx_contracts import NhsNumberVerification, SharingBasis

from ...domain.errors import InvalidRequest
from ...domain.patient import LocalIdentifier, Patient
from ...domain.sharing import Consent, ConsentGiven
from . import codes, inbound

Json = dict[str, Any]
CONSENT_ID = "consent"
DOCUMENT_REFERENCE = "DocumentReference/"
"""How a ServiceRequest names the referral's documents in ``supportingInfo``; documents are
attached on their own, so a write's references to them change nothing."""
_BY_CODE = {
    code: NhsNumberVerification(name)
    for name, (code, _) in codes.NHS_NUMBER_VERIFICATION_CODES.items()
}


def _instant(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _ods(ods: str) -> Json:
    return {"type": "Organization", "identifier": {"system": codes.ODS_CODE, "value": ods}}


# ---- out ---------------------------------------------------------------------------------------


def identifiers(p: Patient) -> list[Json]:
    """The Patient's identifiers: NHS number with its verification, then the local one."""
    found: list[Json] = []
    if p.nhs_number:
        status = (p.nhs_number_verification or NhsNumberVerification.UNVERIFIED).value
        code, display = codes.NHS_NUMBER_VERIFICATION_CODES[status]
        concept = {
            "coding": [{"system": codes.NHS_NUMBER_VERIFICATION, "code": code, "display": display}]
        }
        found.append(
            {
                "extension": [
                    {
                        "url": codes.NHS_NUMBER_VERIFICATION_EXTENSION,
                        "valueCodeableConcept": concept,
                    }
                ],
                "system": codes.NHS_NUMBER,
                "value": p.nhs_number,
            }
        )
    if p.local_identifier:
        local = p.local_identifier
        found.append(
            {
                "system": codes.LOCAL_PATIENT_ID,
                "value": local.value,
                "assigner": _ods(local.organisation),
            }
        )
    return found


def patient_extensions(p: Patient) -> list[Json]:
    if not p.national_data_opt_out:
        return []
    return [{"url": codes.DATA_OPT_OUT_EXTENSION, "valueBoolean": True}]


def consent(c: Consent, referral_id: str) -> Json:
    """The sharing basis as a Consent to contain in the ServiceRequest."""
    return {
        "resourceType": "Consent",
        "id": CONSENT_ID,
        "status": "active",
        "scope": {"coding": [{"system": codes.CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": codes.LOINC, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{referral_id}"},
        "dateTime": _instant(c.recorded_at),
        "organization": [_ods(c.recorded_by_org)],
        "policyRule": {"coding": [{"system": codes.SHARING_BASIS, "code": c.basis.value}]},
        "provision": {"type": "permit"},
    }


# ---- in ----------------------------------------------------------------------------------------


def patient(p: inbound.Patient) -> Patient:
    """The domain's patient from a FHIR Patient: at most one NHS number and one local
    identifier; anything else is refused naming it."""
    nhs: str | None = None
    verification: NhsNumberVerification | None = None
    local: LocalIdentifier | None = None
    for index, ident in enumerate(p.identifier):
        where = f"Patient.identifier[{index}]"
        if ident.system == codes.NHS_NUMBER and ident.value and nhs is None:
            nhs, verification = ident.value, _verification(ident, where)
        elif ident.system == codes.LOCAL_PATIENT_ID and ident.value and local is None:
            issuer = ident.assigner.identifier if ident.assigner else None
            if issuer is None or issuer.system != codes.ODS_CODE or not issuer.value:
                raise InvalidRequest(
                    f"{where}.assigner",
                    "local_identifier_assigner",
                    "a local identifier needs its issuing organisation's ODS code as assigner",
                )
            local = LocalIdentifier(ident.value, issuer.value)
        else:
            raise InvalidRequest(
                where,
                "patient_identifier",
                f"patient identifiers taken: one NHS number ({codes.NHS_NUMBER}) and one local "
                f"identifier ({codes.LOCAL_PATIENT_ID}) with its assigner",
            )
    opt_out = any(e.url == codes.DATA_OPT_OUT_EXTENSION and e.valueBoolean for e in p.extension)
    name = p.name[0].full() if p.name else None
    return Patient(p.address[0].postalCode, nhs, name, p.birthDate, verification, local, opt_out)


def _verification(ident: inbound.Identifier, where: str) -> NhsNumberVerification | None:
    for ext in ident.extension:
        concept = ext.valueCodeableConcept
        code = concept.code_in(codes.NHS_NUMBER_VERIFICATION) if concept else None
        if ext.url != codes.NHS_NUMBER_VERIFICATION_EXTENSION or code not in _BY_CODE:
            raise InvalidRequest(
                f"{where}.extension",
                "nhs_number_verification",
                "the NHS number's verification is UK Core's extension with code 01 (verified) "
                "or 02 (present but not traced)",
            )
        return _BY_CODE[code]
    return None


def consent_given(sr: inbound.ServiceRequest) -> ConsentGiven | None:
    """The sharing basis the ServiceRequest's ``supportingInfo`` names, if any."""
    named = [s for s in sr.supportingInfo if not (s.reference or "").startswith(DOCUMENT_REFERENCE)]
    if not named:
        return None
    found = sr.contained_resource(named[0].reference)
    if len(named) > 1 or not isinstance(found, inbound.Consent):
        raise InvalidRequest(
            "ServiceRequest.supportingInfo",
            "consent_contained",
            "supportingInfo must reference one contained Consent (and the referral's "
            "documents as DocumentReference/{id})",
        )
    basis = found.policyRule.code_in(codes.SHARING_BASIS) if found.policyRule else None
    if basis not in {b.value for b in SharingBasis}:
        known = ", ".join(b.value for b in SharingBasis)
        raise InvalidRequest(
            "Consent.policyRule",
            "sharing_basis",
            f"policyRule must carry a sharing basis of {codes.SHARING_BASIS} ({known})",
        )
    recorded_at = None
    if found.dateTime is not None:
        try:
            recorded_at = datetime.fromisoformat(found.dateTime.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidRequest("Consent.dateTime", "datetime", "not a FHIR dateTime") from exc
    return ConsentGiven(SharingBasis(basis), None, recorded_at)


_NOT_HERE = {
    "name": "Patient.name",
    "birth_date": "Patient.birthDate",
    "postcode": "Patient.address",
    "local_identifier": "Patient.identifier",
    "national_data_opt_out": "Patient.extension",
}
"""What a Patient update may not change, by the element that carries it."""


def nhs_number_recorded(current: Patient, sent: inbound.Patient) -> Json:
    """What a PUT of the Patient records: the NHS number and its verification (UK Core's
    extension; without it, present but not traced). Any other difference is refused naming
    its element: the patient's other details are the referral's, amended by the referrer."""
    wanted = patient(sent)
    for name, element in _NOT_HERE.items():
        if getattr(wanted, name) != getattr(current, name):
            raise InvalidRequest(
                element,
                "not_recorded_here",
                "a Patient update records the NHS number and its verification only; the "
                "referrer amends other details through the ServiceRequest ($process-message)",
            )
    if wanted.nhs_number is None:
        raise InvalidRequest(
            "Patient.identifier",
            "nhs_number_required",
            f"a Patient update records an NHS number ({codes.NHS_NUMBER}) with its verification",
        )
    verification = wanted.nhs_number_verification or NhsNumberVerification.UNVERIFIED
    return {"nhs_number": wanted.nhs_number, "verification": verification}
