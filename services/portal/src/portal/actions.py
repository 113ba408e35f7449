"""The lifecycle actions the portal offers, each with its form. What a person sees is what the
API lists in ``allowed_actions`` for the referral, narrowed by their job roles; an action the
API lists that has no form here yet is not offered.

Adding an action is one :class:`ActionForm` entry below and, if it asks for details, one
template ``templates/actions/<name>.html`` with its fields."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rx_contracts import (
    OUTCOMES,
    CancellationReason,
    FailureReason,
    NhsNumberVerification,
    Outcome,
    Priority,
    ProgressCode,
    ProviderType,
    RejectionReason,
    ServiceType,
)

REFERRER = "referrer"
CLINICIAN = "clinician"
TEAM_LEAD = "team-lead"

Body = dict[str, Any] | None


def _text(form: Mapping[str, str], name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


def _fields(form: Mapping[str, str], *names: str) -> dict[str, Any]:
    """The named fields that were filled in (empty ones are left for the API to judge)."""
    return {name: value for name in names if (value := _text(form, name)) is not None}


@dataclass(frozen=True)
class ActionForm:
    name: str
    """The API's action (``POST /referrals/{id}/<name>``)."""
    label: str
    """The button that offers it."""
    done: str
    """What the referral page says once it is done."""
    roles: frozenset[str]
    """Job roles that may take it (a team lead may take every action)."""
    body: Callable[[Mapping[str, str]], Body] = lambda _form: None
    """The API request body from the posted form."""
    details: bool = False
    """Whether it asks for details on a page of its own (templates/actions/<name>.html)."""
    warning: bool = False
    """Styled as a warning (it turns the referral away or ends it)."""
    document: bool = False
    """A document may go with it (``attachment_id``): one already attached, or a new upload."""

    def allowed_for(self, job_roles: Iterable[str]) -> bool:
        return bool(self.roles & {*job_roles}) or TEAM_LEAD in job_roles


ACTIONS: dict[str, ActionForm] = {
    form.name: form
    for form in (
        ActionForm(
            "accept", "Accept referral", "You accepted this referral.", frozenset({CLINICIAN})
        ),
        ActionForm(
            "reject",
            "Reject referral",
            "You rejected this referral; it goes back to routing.",
            frozenset({CLINICIAN}),
            lambda f: _fields(f, "reason_code", "reason_text"),
            details=True,
            warning=True,
        ),
        ActionForm(
            "redirect",
            "Redirect referral",
            "You redirected this referral; it goes back to routing.",
            frozenset({CLINICIAN}),
            lambda f: _fields(f, "target_provider_type", "target_org", "reason_text"),
            details=True,
        ),
        ActionForm(
            "start", "Start work", "You started work on this referral.", frozenset({CLINICIAN})
        ),
        ActionForm(
            "complete",
            "Complete referral",
            "You completed this referral.",
            frozenset({CLINICIAN}),
            lambda f: _fields(f, "outcome", "summary"),
            details=True,
        ),
        ActionForm(
            "amend",
            "Amend referral",
            "You amended this referral.",
            frozenset({REFERRER}),
            lambda f: {
                **_fields(f, "priority"),
                "clinical_summary": _text(f, "clinical_summary"),
            },
            details=True,
        ),
        ActionForm(
            "cancel",
            "Cancel referral",
            "You cancelled this referral.",
            frozenset({REFERRER}),
            lambda f: _fields(f, "reason_code", "reason_text"),
            details=True,
            warning=True,
        ),
        ActionForm(
            "request-info",
            "Ask the referrer a question",
            "You asked the referrer a question; the response clock waits for the answer.",
            frozenset({CLINICIAN}),
            lambda f: _fields(f, "question"),
            details=True,
        ),
        ActionForm(
            "provide-info",
            "Answer the question",
            "You answered the question; the referral is offered to the same team again.",
            frozenset({REFERRER}),
            lambda f: _fields(f, "answer", "attachment_id"),
            details=True,
            document=True,
        ),
        ActionForm(
            "report-progress",
            "Send an update",
            "You sent an update.",
            frozenset({CLINICIAN}),
            lambda f: _fields(f, "progress_code", "text"),
            details=True,
        ),
        ActionForm(
            "message",
            "Send a message",
            "You sent a message.",
            frozenset({REFERRER, CLINICIAN}),
            lambda f: _fields(f, "text", "attachment_id"),
            details=True,
            document=True,
        ),
        ActionForm(
            "record-nhs-number",
            "Record NHS number",
            "You recorded the NHS number.",
            frozenset({REFERRER}),
            lambda f: _fields(f, "nhs_number", "verification"),
            details=True,
        ),
        ActionForm(
            "fail",
            "Could not deliver",
            "You recorded that this referral could not be delivered.",
            frozenset({CLINICIAN}),
            lambda f: _fields(f, "reason_code", "reason_text"),
            details=True,
            warning=True,
        ),
    )
}


def offered(allowed_actions: Iterable[str], job_roles: Iterable[str]) -> list[ActionForm]:
    """The forms to show: allowed by the API now, open to these job roles, in the API's order."""
    roles = list(job_roles)
    return [
        ACTIONS[name]
        for name in allowed_actions
        if name in ACTIONS and ACTIONS[name].allowed_for(roles)
    ]


OUTCOME_WORDS: dict[str, str] = {
    Outcome.REMAINED_AT_HOME: "Remained at home",
    Outcome.ADMITTED_TO_HOSPITAL: "Admitted to hospital",
    Outcome.REFERRED_ONWARD: "Referred onward",
    Outcome.DIED: "Died",
    Outcome.DECLINED: "Declined the service",
    Outcome.ASSESSMENT_COMPLETED: "Assessment completed",
    Outcome.PACKAGE_OF_CARE_ARRANGED: "Package of care arranged",
    Outcome.NO_ELIGIBLE_NEEDS: "No eligible needs",
    Outcome.SIGNPOSTED: "Signposted to other support",
    Outcome.DISCHARGED: "Discharged",
    Outcome.MANAGED_IN_PRIMARY_CARE: "Managed in primary care",
    Outcome.OTHER: "Other (describe below)",
}

CHOICES: dict[str, list[tuple[str, str]]] = {
    "rejection": [
        (RejectionReason.NOT_AVAILABLE_WITHIN_TIMESCALE, "Not available within the timescale"),
        (RejectionReason.AT_CAPACITY, "At capacity"),
        (RejectionReason.NOT_ELIGIBLE, "Not eligible for our service"),
        (RejectionReason.OUTSIDE_AREA, "Outside our area"),
        (RejectionReason.PATIENT_DECLINED, "The patient declined"),
        (RejectionReason.FAILED_CONTACT, "Could not contact the patient"),
        (RejectionReason.CLINICALLY_INAPPROPRIATE, "Clinically inappropriate"),
        (RejectionReason.OTHER, "Other (say why below)"),
    ],
    "cancellation": [
        (CancellationReason.RECOVERED, "The patient recovered"),
        (CancellationReason.REFERRED_ELSEWHERE, "Referred elsewhere"),
        (CancellationReason.PATIENT_DECLINED, "The patient declined"),
        (CancellationReason.ENTERED_IN_ERROR, "Sent in error"),
        (CancellationReason.DIED, "The patient died"),
        (CancellationReason.OTHER, "Other (say why below)"),
    ],
    "failure": [
        (FailureReason.FAILED_CONTACT, "Could not contact the patient"),
        (FailureReason.DID_NOT_ATTEND, "The patient did not attend"),
        (FailureReason.NO_ACCESS, "Could not get access"),
        (FailureReason.OTHER, "Other (say why below)"),
    ],
    "progress": [
        (ProgressCode.PATIENT_CONTACTED, "Patient contacted"),
        (ProgressCode.VISIT_BOOKED, "Visit booked"),
        (ProgressCode.VISIT_COMPLETED, "Visit completed"),
        (ProgressCode.AWAITING_ASSESSMENT, "Awaiting assessment"),
        (ProgressCode.OTHER, "Other (describe below)"),
    ],
    "verification": [
        (NhsNumberVerification.VERIFIED, "Verified (traced on the Personal Demographics Service)"),
        (NhsNumberVerification.UNVERIFIED, "Not verified yet"),
    ],
    "target_provider_type": [
        (t.value, t.value.replace("-", " ").capitalize()) for t in ProviderType
    ],
    "priority": [(p.value, p.value.capitalize()) for p in Priority],
}
"""Coded answers a form offers, with the words people read."""


def choices_for(referral: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """The coded answers for this referral's forms: the outcomes are its service type's."""
    try:
        outcomes = OUTCOMES[ServiceType(referral.get("service_type", ""))]
    except ValueError:  # a service type newer than this portal: offer every outcome
        outcomes = tuple(Outcome)
    return {**CHOICES, "outcome": [(o.value, OUTCOME_WORDS.get(o, o.value)) for o in outcomes]}
