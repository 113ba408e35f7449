"""A new referral, from the person's organisation: the API judges it, and whatever it finds
wrong is shown next to the field it names."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from rx_contracts import Priority, ServiceType, SharingBasis

from ..adapters.referrals_api import ApiError
from ..views import CONSENT_LABELS
from .web import ApiDep, FormDep, SessionDep, page

router = APIRouter(include_in_schema=False)

COHORT = {
    "care_home_resident": "Lives in a care home",
    "frailty": "Living with frailty",
    "end_of_life": "In the last year of life",
}
CHOICES = {
    "service_type": [(t.value, t.value.replace("-", " ").capitalize()) for t in ServiceType],
    "priority": [(p.value, p.value.capitalize()) for p in Priority],
    "consent": [(b.value, CONSENT_LABELS[b.value]) for b in SharingBasis],
}


def referral_body(form: dict[str, str], organisation: str, practitioner: str) -> dict[str, Any]:
    """The API's ReferralCreate from the form; blank optional fields are left out."""

    def text(name: str) -> str | None:
        return form.get(name, "").strip() or None

    patient = {
        k: v
        for k in ("nhs_number", "name", "birth_date", "postcode")
        if (v := text(f"patient.{k}")) is not None
    }
    body: dict[str, Any] = {
        "referrer": {"organisation": organisation, "practitioner": practitioner},
        "patient": {"postcode": "", **patient},
        "service_type": text("service_type") or "",
        "priority": text("priority") or "routine",
        "cohort": {k: form.get(f"cohort.{k}") == "yes" for k in COHORT},
    }
    reason = {k: v for k in ("code", "text") if (v := text(f"reason.{k}")) is not None}
    if reason:
        body["reason"] = reason
    if summary := text("clinical_summary"):
        body["clinical_summary"] = summary
    if basis := text("consent"):
        body["consent"] = {"basis": basis}  # recorded by the signed-in practitioner, now
    return body


def _form_page(
    request: Request,
    session: SessionDep,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    return page(
        request,
        "create.html",
        session,
        status,
        values=values,
        errors=errors,
        choices=CHOICES,
        cohort=COHORT,
    )


@router.get("/referrals/new")
def new_referral(request: Request, session: SessionDep) -> Response:
    return _form_page(request, session, {"priority": "routine"}, {})


@router.post("/referrals/new")
async def create_referral(
    request: Request, session: SessionDep, api: ApiDep, fields: FormDep
) -> Response:
    values = {k: v for k, v in fields.items() if isinstance(v, str)}
    body = referral_body(values, session.user.organisation, session.user.practitioner)
    try:
        created = await api.create(body, values.get("idempotency_key", ""))
    except ApiError as error:
        if error.status == 422:
            return _form_page(
                request, session, values, error.field_errors() or {"": error.detail}, 422
            )
        raise
    return RedirectResponse(f"/referrals/{created['id']}?done=created", 303)
