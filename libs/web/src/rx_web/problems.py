"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise from a route or map a domain error to it: becomes problem+json."""

    def __init__(self, status: int, title: str, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


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


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app returns, including FastAPI's own validation errors, as problem+json
    naming the field and the rule broken."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
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
        return problem_response(exc.status_code, title, str(exc.detail), request.url.path)
