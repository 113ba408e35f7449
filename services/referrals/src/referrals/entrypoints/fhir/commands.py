"""FHIR resources in, the referrals service's commands out: a new ServiceRequest (with its
Patient) becomes a SubmitReferral; a changed Task becomes a lifecycle action."""

from __future__ import annotations

import re
from typing import Any

from rx_contracts import (
    CancellationReason,
    CohortFlags,
    FailureReason,
    Outcome,
    Priority,
    RejectionReason,
    ServiceType,
)

from ...domain.assignments import AssignmentStatus
from ...domain.errors import InvalidRequest
from ...domain.lifecycle import Action
from ...domain.model import Patient, Referral, ReferrerIdentifier
from ...service_layer.handlers import SubmitReferral
from . import codes, identifiers, identity, inbound

_SNOMED_ID = re.compile(r"^[1-9][0-9]{5,17}$")
_SERVICE_BY_SNOMED = {code: service for service, (code, _) in codes.SERVICE_TYPE_SNOMED.items()}
_COHORT_FLAGS = {name.replace("_", "-"): name for name in CohortFlags.model_fields}


def invalid(expression: str, rule: str, message: str) -> InvalidRequest:
    return InvalidRequest(expression, rule, message)


def submit(sr: inbound.ServiceRequest, patient: inbound.Patient | None) -> SubmitReferral:
    """The referral a new ServiceRequest asks for. ``patient`` is the Bundle's Patient entry;
    without one the subject must be a Patient contained in the ServiceRequest."""
    if sr.status != "active":
        raise invalid("ServiceRequest.status", "create_active", "a new referral is 'active'")
    if patient is None:
        found = sr.contained_resource(sr.subject.reference)
        if not isinstance(found, inbound.Patient):
            raise invalid(
                "ServiceRequest.subject",
                "patient_required",
                "subject must reference the Patient (contained, or a Bundle entry's fullUrl)",
            )
        patient = found
    referrer = sr.requester_ods()
    if referrer is None:
        raise invalid(
            "ServiceRequest.requester",
            "requester_ods",
            f"requester must identify the referring Organization by its ODS code "
            f"({codes.ODS_CODE}), directly or through a contained PractitionerRole",
        )
    reason = sr.reasonCode[0] if sr.reasonCode else None
    reason_code = reason.code_in(codes.SNOMED) if reason else None
    if reason_code is not None and not _SNOMED_ID.fullmatch(reason_code):
        raise invalid(
            "ServiceRequest.reasonCode[0].coding", "snomed_id", "not a SNOMED CT concept id"
        )
    return SubmitReferral(
        referrer_org=referrer,
        patient=_patient(patient),
        service_type=_service_type(sr.code),
        priority=Priority(sr.priority),
        cohort=_cohort(sr.category),
        reason_code=reason_code,
        reason_text=reason.text if reason else None,
        clinical_summary=sr.note[0].text if sr.note else None,
        consent=identity.consent_given(sr),
        identifier=referrer_identifier(sr),
    )


def referrer_identifier(sr: inbound.ServiceRequest) -> ReferrerIdentifier | None:
    """The referrer's identifier the ServiceRequest carries, if any."""
    if not sr.identifier:
        return None
    return identifiers.given(sr.identifier[0], "ServiceRequest.identifier[0]")


def _patient(p: inbound.Patient) -> Patient:
    return identity.patient(p)


def _service_type(code: inbound.CodeableConcept) -> ServiceType:
    ours = code.code_in(codes.SERVICE_TYPE)
    if ours is not None:
        try:
            return ServiceType(ours)
        except ValueError:
            pass
    snomed = code.code_in(codes.SNOMED)
    if snomed in _SERVICE_BY_SNOMED:
        return _SERVICE_BY_SNOMED[snomed]
    known = ", ".join(s.value for s in ServiceType)
    raise invalid(
        "ServiceRequest.code",
        "service_type",
        f"code must carry a service type of {codes.SERVICE_TYPE} ({known})",
    )


def _cohort(category: list[inbound.CodeableConcept]) -> CohortFlags:
    flags: dict[str, bool] = {}
    for index, concept in enumerate(category):
        for coding in concept.coding:
            if coding.system != codes.COHORT:
                continue
            if coding.code not in _COHORT_FLAGS:
                raise invalid(
                    f"ServiceRequest.category[{index}]",
                    "cohort",
                    f"unknown cohort {coding.code!r}; known: {', '.join(_COHORT_FLAGS)}",
                )
            flags[_COHORT_FLAGS[coding.code]] = True
    return CohortFlags(**flags)


TASK_ACTIONS = {
    AssignmentStatus.ACCEPTED.value: Action.ACCEPT,
    AssignmentStatus.REJECTED.value: Action.REJECT,
    AssignmentStatus.IN_PROGRESS.value: Action.START,
    AssignmentStatus.COMPLETED.value: Action.COMPLETE,
    AssignmentStatus.ON_HOLD.value: Action.REQUEST_INFO,
    AssignmentStatus.FAILED.value: Action.FAIL,
}
"""The Task statuses its owner may set, and the lifecycle action each one is."""


def task_action(current: str, task: inbound.Task) -> tuple[Action, dict[str, Any]]:
    """The lifecycle action a Task update asks for (status from ``current`` to the new one),
    with the details it carries (rejection reason, outcome)."""
    if task.status == current:
        raise invalid("Task.status", "no_change", f"the Task is already {current}")
    action = TASK_ACTIONS.get(task.status)
    if action is None:
        raise invalid(
            "Task.status",
            "owner_statuses",
            "the owner sets a Task to accepted, rejected, on-hold (a question, in "
            "statusReason.text), in-progress, completed or failed; the referrer cancels by "
            "revoking the ServiceRequest",
        )
    if action is Action.REJECT:
        concept = task.statusReason or inbound.CodeableConcept()
        code = concept.code_in(codes.REJECTION_REASON)
        if code not in {r.value for r in RejectionReason}:
            raise invalid(
                "Task.statusReason",
                "rejection_reason",
                f"a rejection needs statusReason coded in {codes.REJECTION_REASON} "
                f"({', '.join(r.value for r in RejectionReason)})",
            )
        return action, {"reason": RejectionReason(code), "text": concept.text}
    if action is Action.COMPLETE:
        outcome, summary = task.outcome()
        if outcome not in {o.value for o in Outcome}:
            raise invalid(
                "Task.output",
                "outcome",
                f"completion needs an output valueCodeableConcept coded in {codes.OUTCOME} "
                f"({', '.join(o.value for o in Outcome)})",
            )
        return action, {"outcome": Outcome(outcome), "summary": summary}
    if action is Action.REQUEST_INFO:
        question = task.statusReason.text if task.statusReason else None
        if not question:
            raise invalid(
                "Task.statusReason",
                "question",
                "putting a Task on hold asks the referrer a question: give it as statusReason.text",
            )
        return action, {"question": question}
    if action is Action.FAIL:
        concept = task.statusReason or inbound.CodeableConcept()
        code = concept.code_in(codes.FAILURE_REASON)
        if code not in {r.value for r in FailureReason}:
            raise invalid(
                "Task.statusReason",
                "failure_reason",
                f"a failed Task needs statusReason coded in {codes.FAILURE_REASON} "
                f"({', '.join(r.value for r in FailureReason)})",
            )
        return action, {"reason": FailureReason(code), "text": concept.text}
    return action, {}


def update(current: Referral, sr: inbound.ServiceRequest) -> tuple[Action, dict[str, Any]]:
    """What a PUT of the ServiceRequest asks of ``current``: cancel (revoked) or amend (what
    differs among priority, cohort, reason and clinical summary). The rest is not the
    referrer's to change here."""
    if sr.status == "revoked":
        return Action.CANCEL, _cancellation(sr.cancel_reason())
    if sr.status != "active":
        raise invalid(
            "ServiceRequest.status",
            "referrer_statuses",
            "the referrer keeps a ServiceRequest active (to amend it) or revokes it (to cancel)",
        )
    wanted = submit(sr, _patient_of(current))
    if wanted.referrer_org != current.referrer_org:
        raise invalid("ServiceRequest.requester", "not_amendable", "the referrer cannot change")
    if wanted.identifier != current.identifier:
        raise invalid(
            "ServiceRequest.identifier", "not_amendable", "the referrer's identifier cannot change"
        )
    if wanted.service_type != current.service_type:
        raise invalid(
            "ServiceRequest.code",
            "not_amendable",
            "the service type cannot change; cancel and refer again",
        )
    changes: dict[str, Any] = {
        "priority": wanted.priority,
        "cohort": wanted.cohort,
        "reason_code": wanted.reason_code,
        "reason_text": wanted.reason_text,
        "clinical_summary": wanted.clinical_summary,
    }
    found = {k: v for k, v in changes.items() if getattr(current, k) != v}
    given, now = wanted.consent, current.consent
    if given is not None and (
        now is None
        or given.basis != now.basis
        or (given.recorded_at is not None and given.recorded_at != now.recorded_at)
    ):
        found["consent"] = given  # a recorded basis stays unless another replaces it
    return Action.AMEND, found


def _cancellation(concept: inbound.CodeableConcept | None) -> dict[str, Any]:
    """A cancellation's reason from the request-statusReason extension: a code of
    ``cancellation-reason``, text, or both; a code of another system counts as text (as
    before coded cancellation reasons existed)."""
    code = concept.code_in(codes.CANCELLATION_REASON) if concept else None
    if concept is not None and code is not None:
        if code not in {r.value for r in CancellationReason}:
            raise invalid(
                "ServiceRequest.extension",
                "cancel_reason",
                f"unknown cancellation reason {code!r}; known: "
                f"{', '.join(r.value for r in CancellationReason)}",
            )
        return {"reason": CancellationReason(code), "text": concept.text}
    text = None
    if concept is not None:
        text = concept.text or (concept.coding[0].code if concept.coding else None)
    if not text:
        raise invalid(
            "ServiceRequest.extension",
            "cancel_reason",
            f"a cancellation needs its reason in {codes.STATUS_REASON_EXTENSION}",
        )
    return {"text": text}


def _patient_of(current: Referral) -> inbound.Patient:
    """The referral's patient as a contained Patient would give it (a PUT of the
    ServiceRequest does not change the patient)."""
    p = current.patient
    return inbound.Patient(
        resourceType="Patient",
        identifier=[inbound.Identifier(system=codes.NHS_NUMBER, value=p.nhs_number)]
        if p.nhs_number
        else [],
        name=[inbound.HumanName(text=p.name)] if p.name else [],
        birthDate=p.birth_date,
        address=[inbound.Address(postalCode=p.postcode)],
    )


def patient_changes(current: Referral, patient: inbound.Patient) -> dict[str, Any]:
    """The patient details a message's Patient changes (the postcode cannot change: the
    domain refuses that)."""
    wanted = _patient(patient)
    changes = {
        name: getattr(wanted, name)
        for name in (
            "postcode",
            "nhs_number",
            "name",
            "birth_date",
            "local_identifier",
            "national_data_opt_out",
        )
        if getattr(wanted, name) != getattr(current.patient, name)
    }
    return {"patient": changes} if changes else {}
