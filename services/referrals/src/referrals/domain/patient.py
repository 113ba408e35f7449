"""Who a referral is for, and how that person is identified: an NHS number with its
verification status or, for a person without one, a local identifier and the organisation that
issued it (social care must accept people without a verified NHS number)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rx_contracts import NhsNumberVerification

from . import identifiers
from .errors import InvalidRequest

V = NhsNumberVerification


@dataclass(frozen=True)
class LocalIdentifier:
    """An identifier an organisation gave the person (a social care case number, a hospital
    number), meaningful only with the ODS code of the organisation that issued it."""

    value: str
    organisation: str


@dataclass(frozen=True)
class Patient:
    """Who the referral is for. Never leaves this service in an event."""

    postcode: str
    nhs_number: str | None = None
    name: str | None = None
    birth_date: str | None = None
    nhs_number_verification: NhsNumberVerification | None = None
    """None until validated: then absent without a number, unverified unless said otherwise."""
    local_identifier: LocalIdentifier | None = None
    national_data_opt_out: bool = False
    """A recorded national data opt-out: the referral is left out of evaluation figures."""


def valid_patient(patient: Patient) -> Patient:
    """``patient`` with its identifiers checked and normalised, and its NHS number's
    verification status made consistent with whether it has one."""
    postcode, _ = identifiers.postcode(patient.postcode)
    nhs = identifiers.nhs_number(patient.nhs_number) if patient.nhs_number else None
    return replace(
        patient,
        postcode=postcode,
        nhs_number=nhs,
        nhs_number_verification=verification(nhs, patient.nhs_number_verification),
        local_identifier=_local(patient.local_identifier),
    )


def verification(
    nhs_number: str | None, given: NhsNumberVerification | None
) -> NhsNumberVerification:
    """The status an NHS number (or its absence) carries; a contradiction is refused."""
    field = "patient.nhs_number_verification"
    if nhs_number is None:
        if given not in (None, V.ABSENT):
            raise InvalidRequest(
                field,
                "nhs_number_required",
                f"'{given}' needs an NHS number; without one it is absent",
            )
        return V.ABSENT
    if given is V.ABSENT:
        raise InvalidRequest(
            field, "absent_with_number", "an NHS number is given, so it is not absent"
        )
    return given or V.UNVERIFIED


def _local(found: LocalIdentifier | None) -> LocalIdentifier | None:
    if found is None:
        return None
    value = found.value.strip()
    if not value or len(value) > 64:
        raise InvalidRequest(
            "patient.local_identifier.value", "local_identifier_format", "1 to 64 characters"
        )
    org = identifiers.ods_code(found.organisation, "patient.local_identifier.organisation")
    return LocalIdentifier(value, org)
