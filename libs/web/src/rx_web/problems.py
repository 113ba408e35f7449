"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

PROBLEM_JSON = "application/problem+json"


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
            429: "Too many requests",
        }.get(exc.status_code, "HTTP error")
        response = problem_response(exc.status_code, title, str(exc.detail), request.url.path)
        response.headers.update(exc.headers or {})
        return response
