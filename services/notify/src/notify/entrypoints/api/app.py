"""The notify API application (``python -m notify api``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from rx_web.app import service_app
from rx_web.checked_headers import pending_errors
from rx_web.problems import Problem, problem_response
from rx_web.routers import include_routes

from ...adapters.sender import Resolver, system_resolver
from ...bootstrap import Container, bootstrap
from ...config import Settings, get_settings
from ...domain.errors import NotifyError
from .fhir_subscription import FHIR_JSON
from .routes_fhir import router as fhir_router
from .routes_subscriptions import router as subscriptions_router

ISSUE_CODES = {401: "login", 403: "forbidden", 404: "not-found", 409: "conflict", 412: "conflict"}


def operation_outcome(status: int, detail: str, fields: list[str] | None = None) -> JSONResponse:
    """A FHIR route's error: an OperationOutcome naming the elements at fault."""
    issue: dict[str, Any] = {
        "severity": "error",
        "code": ISSUE_CODES.get(status, "invalid" if status == 422 else "processing"),
        "diagnostics": detail,
    }
    if fields:
        issue["expression"] = fields
    return JSONResponse(
        {"resourceType": "OperationOutcome", "issue": [issue]},
        status_code=status,
        media_type=FHIR_JSON,
    )


def fhir_errors(request: Request, exc: RequestValidationError) -> list[Any]:
    """FastAPI's errors of a FHIR request, with the header errors its dependency left
    (``rx_web.checked_headers``) where FastAPI listed the route's own headers: after the
    path and query, before the body."""
    errors = list(exc.errors())
    at = next((i for i, e in enumerate(errors) if e["loc"][0] not in ("path", "query")), None)
    at = len(errors) if at is None else at
    return [*errors[:at], *pending_errors(request), *errors[at:]]


def _is_fhir(request: Request) -> bool:
    return request.url.path.startswith("/fhir/")


def create_app(
    settings: Settings | None = None,
    container: Container | None = None,
    resolver: Resolver = system_resolver,
) -> FastAPI:
    """Build the app; the container (database engine…) is made at startup, not import.
    ``resolver`` resolves endpoint host names (tests pass a stub)."""
    settings = settings or (container.settings if container else get_settings())
    app = service_app(
        "notify",
        "Subscriptions that push referral events to your HTTPS endpoint: FHIR R4 Subscriptions "
        "(R5 Backport) at /fhir/R4/Subscription and plain CloudEvents webhooks signed per "
        "Standard Webhooks at /subscriptions. Authenticate with a bearer token from the issuer "
        "(audience 'notify').",
        lambda: container or bootstrap(settings, resolver=resolver),
        max_body_size=settings.max_body_bytes,
    )
    if settings.allowed_origins:
        # The ops console reads subscriptions' health from the browser, with its own token.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET"],
            allow_headers=["Authorization", "Accept"],
        )
    validation_handler = app.exception_handlers[RequestValidationError]
    problem_handler = app.exception_handlers[Problem]

    @app.exception_handler(NotifyError)
    async def _domain_error(request: Request, exc: NotifyError) -> JSONResponse:
        if _is_fhir(request):
            fields = [str(e["field"]) for e in exc.extra().get("errors", [])]  # type: ignore[attr-defined]
            return operation_outcome(exc.status, str(exc), fields)
        return problem_response(exc.status, exc.title, str(exc), request.url.path, **exc.extra())

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        if not _is_fhir(request):
            return await validation_handler(request, exc)  # type: ignore[misc]
        errors = fhir_errors(request, exc)
        fields = [".".join(str(p) for p in e["loc"] if p != "body") for e in errors]
        detail = "; ".join(
            f"{f or 'body'}: {e['msg']}" for f, e in zip(fields, errors, strict=True)
        )
        return operation_outcome(422, detail, fields)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Any:
        if not _is_fhir(request):
            return await problem_handler(request, exc)  # type: ignore[misc]
        return operation_outcome(exc.status, exc.detail or exc.title)

    include_routes(app, subscriptions_router)
    app.include_router(fhir_router)  # its own response class: include_routes refuses it
    _document_fhir_errors(app)
    return app


OPERATION_OUTCOME_SCHEMA: dict[str, Any] = {
    "title": "OperationOutcome",
    "type": "object",
    "description": "FHIR R4 OperationOutcome: what was wrong, and the elements at fault.",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {"type": "array", "items": {"type": "object"}},
    },
}


def _document_fhir_errors(app: FastAPI) -> None:
    """FHIR routes answer their own errors with an OperationOutcome; what is refused before a
    route runs (no token, too large, too many requests) stays problem+json. Both are
    documented."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/fhir/"):
                continue
            for operation in operations.values():
                for code, answer in operation.get("responses", {}).items():
                    if code[0] in "45" and FHIR_JSON not in answer.get("content", {}):
                        answer["content"] = {
                            **answer.get("content", {}),
                            FHIR_JSON: {
                                "schema": {"$ref": "#/components/schemas/OperationOutcome"}
                            },
                        }
        schema["components"]["schemas"]["OperationOutcome"] = OPERATION_OUTCOME_SCHEMA
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
