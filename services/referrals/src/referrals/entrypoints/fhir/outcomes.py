"""Every failure on the FHIR interface as an OperationOutcome (application/fhir+json) naming
the element (``expression``) and the rule broken, with the status the FHIR RESTful API
prescribes: 400 unparseable or not FHIR, 404 unknown (or not yours), 409 conflict with the
current state, 412 stale If-Match, 422 a business rule broken."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from rx_web.problems import PROBLEM_JSON, install_problem_handlers
from starlette.types import Message, Send

from ...domain.errors import InvalidIdentifier, NotPermitted, ReferralError, StaleVersion

FHIR_JSON = "application/fhir+json"

ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "business-rule",
    428: "required",
    429: "throttled",
    503: "transient",
}

FIELD_EXPRESSIONS = {
    "patient.nhs_number": "Patient.identifier[0].value",
    "patient.postcode": "Patient.address[0].postalCode",
    "patient.nhs_number_verification": "Patient.identifier[0].extension",
    "patient.local_identifier.value": "Patient.identifier.value",
    "patient.local_identifier.organisation": "Patient.identifier.assigner",
    "consent": "ServiceRequest.supportingInfo",
    "consent.recorded_at": "Consent.dateTime",
    "referrer.organisation": "ServiceRequest.requester",
    "reason_text": "Task.statusReason.text",
    "summary": "Task.output[0].valueCodeableConcept.text",
    "question": "Communication.payload.contentString",
    "answer": "Communication.payload.contentString",
    "text": "Communication.payload.contentString",
    "attachment_id": "Communication.payload.contentAttachment.url",
    "nhs_number": "Patient.identifier.value",
    "body": "",
}
"""The domain's field names as FHIR elements, where a domain rule names one."""


class FhirProblem(Exception):
    """Raise from a FHIR route: becomes an OperationOutcome with ``status``."""

    def __init__(
        self, status: int, message: str, expression: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.expression = status, expression
        self.code = code or ISSUE_CODES.get(status, "processing")


def issue(
    message: str, code: str, expression: str | None = None, severity: str = "error"
) -> dict[str, Any]:
    found: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": message}
    if expression:
        found["expression"] = [expression]
    return found


def operation_outcome(issues: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def outcome_response(
    status: int, issues: Sequence[dict[str, Any]], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        operation_outcome(issues), status_code=status, media_type=FHIR_JSON, headers=headers
    )


def validation_issues(exc: ValidationError, root: str) -> list[dict[str, Any]]:
    """Pydantic's errors as issues, each naming the element (``root`` is the resource type or
    path the parsed document starts at)."""
    return [
        issue(f"{error['msg']} ({error['type']})", "structure", element_path(root, error["loc"]))
        for error in exc.errors()
    ]


def element_path(root: str, loc: Iterable[Any]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("Patient", "ServiceRequest", "PractitionerRole") and path.endswith(
            ("resource", "]")
        ):
            continue  # the union's tag: the element path does not name it
        else:
            path += f".{part}"
    return path


def install(app: FastAPI) -> None:
    """Error handlers of the FHIR app: domain errors and parse errors as OperationOutcomes;
    everything else the platform answers with problem+json becomes one on its way out
    (:func:`problems_as_outcomes`)."""
    install_problem_handlers(app)

    @app.exception_handler(FhirProblem)
    async def _fhir(request: Request, exc: FhirProblem) -> JSONResponse:
        return outcome_response(exc.status, [issue(str(exc), exc.code, exc.expression)])

    @app.exception_handler(ReferralError)
    async def _domain(request: Request, exc: ReferralError) -> JSONResponse:
        status = exc.status
        expression = None
        if isinstance(exc, InvalidIdentifier):
            expression = FIELD_EXPRESSIONS.get(exc.field, exc.field)
            message = f"{exc} (rule {exc.rule})"
        else:
            message = str(exc)
        if isinstance(exc, NotPermitted):
            # The FHIR interface answers 403 for an organisation that may see but not act.
            message += f"; you may: {', '.join(exc.allowed_actions) or 'nothing'}"
        headers = {"ETag": f'W/"{exc.current}"'} if isinstance(exc, StaleVersion) else None
        code = ISSUE_CODES.get(status, "processing")
        return outcome_response(status, [issue(message, code, expression or None)], headers)


def problems_as_outcomes(send: Send) -> Send:
    """``send`` for a request on the FHIR interface, through which a problem+json answer
    (authentication, rate and size limits, an unavailable database, an unknown route…) goes
    out as the equivalent OperationOutcome instead; any other answer passes untouched. The
    service's outermost layer of its own wraps a FHIR request's ``send`` in it
    (``referrals.entrypoints.api.app.ServiceLayer``)."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def converting_send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            if headers.get(b"content-type", b"").startswith(PROBLEM_JSON.encode()):
                start = message
                return
            await send(message)
        elif start is not None:
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await _send_outcome(send, start, b"".join(chunks))
        else:
            await send(message)

    return converting_send


async def _send_outcome(send: Send, start: Message, body: bytes) -> None:
    problem = json.loads(body or b"{}")
    status = int(start["status"])
    code = ISSUE_CODES.get(status, "processing")
    summary = problem.get("detail") or problem.get("title") or "error"
    errors = problem.get("errors") or []
    issues = [
        issue(f"{summary} (rule {e.get('rule', '')})", code, e.get("field") or None) for e in errors
    ] or [issue(summary, code)]
    encoded = json.dumps(operation_outcome(issues)).encode()
    headers = [
        (name, value)
        for name, value in start.get("headers", [])
        if name not in (b"content-type", b"content-length")
    ]
    headers += [
        (b"content-type", FHIR_JSON.encode()),
        (b"content-length", str(len(encoded)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": encoded})
