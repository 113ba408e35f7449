"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from .checked_headers import pending_errors

PROBLEM_JSON = "application/problem+json"

DATABASE_RETRY_AFTER_S = 5
"""What a 503 for an unavailable database tells the caller to wait before retrying."""

MISSING_HEADER_ANSWERS: dict[str, tuple[int, str, str]] = {
    "if-match": (
        428,
        "Precondition required",
        "send If-Match with the ETag of the version you read (RFC 6585)",
    ),
    "idempotency-key": (
        400,
        "Idempotency-Key required",
        "every POST needs an Idempotency-Key header, unique per logical request",
    ),
}
"""Required headers whose absence has its own answer rather than a generic 422: a change
without If-Match is 428 Precondition Required; a POST without an Idempotency-Key is 400."""


class Problem(Exception):
    """Raise from a route or map a domain error to it: becomes problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        """``extra`` become members of the body; ``headers`` go on the response
        (WWW-Authenticate, Retry-After)."""
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.headers = dict(headers or {})


def invalid_field(field: str, rule: str, message: str) -> Problem:
    """A 422 naming one field and the rule it broke, shaped like FastAPI's own validation
    errors (for what is checked in a route: a cursor, a header)."""
    return Problem(
        422,
        "Invalid request",
        f"{field}: {message}",
        errors=[{"field": field, "rule": rule, "message": message}],
    )


def problem_response(
    status: int, title: str, detail: str | None = None, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


async def send_problem(
    send: Send,
    status: int,
    title: str,
    detail: str,
    instance: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer with problem+json straight from ASGI middleware (outside FastAPI's handlers)."""
    response = problem_response(status, title, detail, instance)
    response.headers.update(headers or {})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app returns, including FastAPI's own validation errors, as problem+json
    naming the field and the rule broken."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        response = problem_response(
            exc.status, exc.title, exc.detail, request.url.path, **exc.extra
        )
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Headers a dependency checked itself come first, as FastAPI lists a dependency's.
        found = [*pending_errors(request), *exc.errors()]
        missing = {
            str(err["loc"][1]).lower()
            for err in found
            if err["type"] == "missing" and len(err["loc"]) == 2 and err["loc"][0] == "header"
        }
        for header, (status, title, detail) in MISSING_HEADER_ANSWERS.items():
            if header.replace("-", "_") in missing or header in missing:
                return problem_response(status, title, detail, request.url.path)
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"] if p != "body"),
                "rule": err["type"],
                "message": err["msg"],
            }
            for err in found
        ]
        detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
        return problem_response(422, "Invalid request", detail, request.url.path, errors=errors)

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if not _database_unavailable(exc):
            raise exc  # a bug, not an outage: the server error it is
        return _unavailable(request)

    @app.exception_handler(PoolTimeout)  # rx_messaging's DatabaseBusy is one too
    async def _database_busy(request: Request, exc: Exception) -> JSONResponse:
        return _unavailable(request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {
            404: "Not found",
            405: "Method not allowed",
            413: "Request too large",
            429: "Too many requests",
        }.get(exc.status_code, "HTTP error")
        response = problem_response(exc.status_code, title, str(exc.detail), request.url.path)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. RFC 9110 requires the Allow header on a
    405; Starlette's lists only the first route that matched the path, and we often have
    several (GET and POST /referrals are two routes)."""
    methods: set[str] = set()
    # The path within the app: a mounted app's routes (the FHIR interface's) do not name the
    # prefix it is mounted at, which Starlette keeps in root_path.
    path: str = request.scope["path"]
    path = path.removeprefix(request.scope.get("root_path", ""))
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _database_unavailable(exc: DBAPIError) -> bool:
    """The database could not be reached or is too busy, as opposed to a statement that is
    wrong: connection refused or lost, server shutting down, SQLite locked or its file gone."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


def _unavailable(request: Request) -> JSONResponse:
    """503 for a database outage. The transaction was rolled back, so nothing of the request
    was stored: retrying (with the same Idempotency-Key) is safe."""
    response = problem_response(
        503,
        "Service unavailable",
        "the service's database is not answering; nothing of this request was stored. "
        f"Retry in {DATABASE_RETRY_AFTER_S} s (with the same Idempotency-Key for a POST)",
        request.url.path,
    )
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
    return response
