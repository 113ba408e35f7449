"""Dependencies and helpers of the FHIR routes: the JSON API's caller and unit of work, ETags
in FHIR's weak form, Idempotency-Key, bodies read as FHIR JSON, answers as FHIR JSON."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, TypeVar

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from rx_web.checked_headers import ETAG_PATTERN

from ..api.deps import CallerDep, Uow
from .outcomes import FHIR_JSON, FhirProblem, outcome_response, validation_issues

__all__ = ["FHIR_JSON", "CallerDep", "Uow", "fhir_response", "parse", "read_json"]

M = TypeVar("M", bound=BaseModel)

BASE_PATH = "/fhir/R4"
"""Where the FHIR interface is mounted in the referrals API."""


class FhirJSONResponse(JSONResponse):
    media_type = FHIR_JSON


def fhir_response(
    resource: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return FhirJSONResponse(resource, status_code=status_code, headers=headers)


async def read_json(request: Request) -> Any:
    """The body as JSON; 400 when it is not."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FhirProblem(400, f"the body is not JSON: {exc}") from exc


def parse(model: type[M], body: Any, root: str) -> M:
    """``body`` as ``model``; a body that breaks it is a 400 naming each element."""
    if not isinstance(body, dict):
        raise FhirProblem(400, f"expected a {root} resource (a JSON object)", root)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ParseFailed(validation_issues(exc, root)) from exc


class ParseFailed(Exception):
    def __init__(self, issues: list[dict[str, Any]]) -> None:
        super().__init__("invalid resource")
        self.issues = issues

    def response(self) -> JSONResponse:
        return outcome_response(400, self.issues)


def if_match_version(value: str | None, required: bool) -> int | None:
    """The version an If-Match names (``W/"3"``, ``"3"`` or ``3``); 428 when required and
    missing, 400 when it is not one of ours."""
    if value is None:
        if required:
            raise FhirProblem(
                428, 'send If-Match with the ETag of the version you read, e.g. W/"3"', "If-Match"
            )
        return None
    if not re.fullmatch(ETAG_PATTERN, value):
        raise FhirProblem(400, f"If-Match {value!r} is not an ETag this server issued", "If-Match")
    return int(value.strip().removeprefix("W/").strip('"'))


IfMatchHeader = Annotated[str | None, Header(alias="If-Match")]
IdempotencyKeyHeader = Annotated[
    str | None, Header(alias="Idempotency-Key", pattern=r"^[ -~]{1,255}$")
]
IfNoneExistHeader = Annotated[str | None, Header(alias="If-None-Exist")]

NO_CONDITIONAL_CREATE = (
    "conditional create (If-None-Exist) is not supported here, so nothing was stored; "
    "an Idempotency-Key makes a retry safe: the same key is answered as the first time, "
    "nothing stored twice"
)


def refuse_conditional_create(value: str | None, expression: str = "If-None-Exist") -> None:
    """412 for a create that asks to be conditional: FHIR R4 (http.html#ccreate) has a server
    that does not support conditional create answer so, with an OperationOutcome, rather than
    ignore the header and store a duplicate the client believes it prevented."""
    if value is not None:
        raise FhirProblem(412, NO_CONDITIONAL_CREATE, expression, code="not-supported")
