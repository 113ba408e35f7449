"""The lifecycle actions the portal offers, each with its form. What a person sees is what the
API lists in ``allowed_actions`` for the referral, narrowed by their job roles; an action the
API lists that has no form here yet is not offered.

Adding an action (e.g. a question to the referrer) is one :class:`ActionForm` entry below and,
if it asks for details, one template ``templates/actions/<name>.html`` with its fields."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rx_contracts import Outcome, Priority, ProviderType, RejectionReason

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
            lambda f: _fields(f, "reason_text"),
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


CHOICES: dict[str, list[tuple[str, str]]] = {
    "reason_code": [
        (RejectionReason.NOT_AVAILABLE_WITHIN_TIMESCALE, "Not available within the timescale"),
        (RejectionReason.FAILED_CONTACT, "Could not contact the patient"),
        (RejectionReason.OUTSIDE_SERVICE_CRITERIA, "Outside our service criteria"),
        (RejectionReason.OTHER, "Other (say why below)"),
    ],
    "outcome": [
        (Outcome.REMAINED_AT_HOME, "Remained at home"),
        (Outcome.ADMITTED_TO_HOSPITAL, "Admitted to hospital"),
        (Outcome.REFERRED_ONWARD, "Referred onward"),
        (Outcome.DIED, "Died"),
        (Outcome.DECLINED, "Declined the service"),
        (Outcome.OTHER, "Other (describe below)"),
    ],
    "target_provider_type": [
        (t.value, t.value.replace("-", " ").capitalize()) for t in ProviderType
    ],
    "priority": [(p.value, p.value.capitalize()) for p in Priority],
}
"""Coded answers a form offers, with the words people read."""
