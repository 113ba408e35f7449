"""What every FHIR write shares: an Idempotency-Key (required, as on the JSON API's POSTs),
run once per key through the JSON API's own mechanism, answered as FHIR JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from ...adapters.idempotency import StoredResponse
from ...domain.caller import Caller
from ...service_layer.unit_of_work import UnitOfWork
from ..api.idempotency import run_once
from .deps import FHIR_JSON
from .outcomes import FhirProblem
from .routes_search import full_url


def require_key(key: str | None) -> str:
    if key is None:
        raise FhirProblem(
            400,
            "every write needs an Idempotency-Key header, unique per logical request",
            "Idempotency-Key",
        )
    return key


def idempotent(
    request: Request,
    caller: Caller,
    key: str | None,
    body: Any,
    if_match: int | None,
    execute: Callable[[UnitOfWork], Any],
    present: Callable[[Any], StoredResponse],
) -> JSONResponse:
    """Run ``execute`` once per Idempotency-Key; ``present`` renders what it made (inside the
    commit, so a retry gets exactly the first answer)."""
    response = run_once(
        request, caller, require_key(key), {"fhir": body}, if_match, execute, present=present
    )
    response.headers["content-type"] = FHIR_JSON
    return response


def location(request: Request, resource: dict[str, Any]) -> str:
    """The versioned URL of a resource (Location of a create)."""
    return full_url(
        request,
        f"{resource['resourceType']}/{resource['id']}/_history/{resource['meta']['versionId']}",
    )
