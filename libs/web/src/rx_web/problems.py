"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"

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

    def __init__(self, status: int, title: str, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


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


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app returns, including FastAPI's own validation errors, as problem+json
    naming the field and the rule broken."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        missing = {
            str(err["loc"][1]).lower()
            for err in exc.errors()
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
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
        return problem_response(422, "Invalid request", detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {
            404: "Not found",
            405: "Method not allowed",
            413: "Request too large",
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
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)
