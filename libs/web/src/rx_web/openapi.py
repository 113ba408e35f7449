"""The answers every service gives outside its routes' own logic, written into its OpenAPI
document from the same facts that produce them, so no route has to remember to list them:

- 400 on every operation that takes a body, for one that is not UTF-8 JSON, and 413 for one
  over the size limit where the service has one;
- 401 on every operation that needs an identity (it depends on :func:`rx_web.identity.get_identity`
  or a dependency that reads it, :func:`rx_web.identity.reads_identity`),
  with the bearer scheme and the X-Practitioner header it reads (declared on
  :func:`rx_web.identity.documented_identity`, not solved by FastAPI per request; headers a
  dependency reads itself likewise, :func:`documented_as`);
- 403 on every operation that needs a role (a :func:`rx_web.identity.require_roles` check);
- 429 with ``Retry-After`` on every rate-limited operation, when the rate limit is on;
- 503 with ``Retry-After`` on every operation, for a database that is unavailable.

A route's own description of one of these codes wins. And every error answer of every
operation is documented as what :mod:`rx_web.problems` sends: ``application/problem+json``
(FastAPI's default 422 schema, which no service sends, is replaced)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute
from rx_contracts import Role

from .identity import documented_identity, learns_identity
from .problems import PROBLEM_JSON
from .ratelimit import EXEMPT_PATHS

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "For invalid requests: each field and the rule it broke.",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "rule": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}


def _problem(description: str, retry_after: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": PROBLEM_CONTENT,
    }
    if retry_after:
        answer["headers"] = _RETRY_AFTER
    return answer


def api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every API route of ``app`` as it is served: with the prefixes and dependencies of the
    routers that include it applied (FastAPI ≥ 0.165 includes routers lazily)."""
    flatten = getattr(routing, "iter_route_contexts", None)
    for route in flatten(app.routes) if flatten else app.routes:
        served = getattr(route, "route", route)
        if isinstance(served, APIRoute):
            yield served


def dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency a route's handler runs, depth first."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from dependency_calls(sub)


def required_roles(dependant: Dependant) -> frozenset[Role] | None:
    """The roles a :func:`rx_web.identity.require_roles` check on the route lets through, if
    it has one."""
    for call in dependency_calls(dependant):
        roles = getattr(call, "required_roles", None)
        if roles is not None:
            return frozenset(roles)
    return None


def common_answers(
    route: APIRoute, rate_limited: bool, body_limited: bool
) -> dict[str, dict[str, Any]]:
    """The answers ``route`` gives besides its own: see the module's docstring."""
    answers: dict[str, dict[str, Any]] = {}
    if route.body_field is not None:
        answers["400"] = _problem("The body could not be read as UTF-8 JSON")
        if body_limited:
            answers["413"] = _problem("The body is over the size limit")
    if any(learns_identity(call) for call in dependency_calls(route.dependant)):
        answers["401"] = _problem("Missing, expired or invalid access token")
    if roles := required_roles(route.dependant):
        needed = " or ".join(sorted(r.value for r in roles))
        answers["403"] = _problem(f"Your token does not carry the role this needs: {needed}")
    if rate_limited and route.path not in EXEMPT_PATHS:
        answers["429"] = _problem("Too many requests from your client", retry_after=True)
    answers["503"] = _problem("The service's database is unavailable", retry_after=True)
    return answers


D = TypeVar("D", bound=Callable[..., Any])


def documented_as(declarations: Callable[..., Any]) -> Callable[[D], D]:
    """Mark a dependency that reads headers (or the caller) from the request itself: the API
    document shows it with the parameters and dependencies of ``declarations`` (a function
    never called), in their order, as if they were its own. For a dependency marked
    :func:`~rx_web.identity.reads_identity` they include
    :func:`~rx_web.identity.documented_identity` wherever the caller's declarations belong."""

    def mark(dependency: D) -> D:
        dependency.documented_as = declarations  # type: ignore[attr-defined]
        return dependency

    return mark


@contextmanager
def _declarations_shown(app: FastAPI) -> Iterator[None]:
    """While FastAPI writes ``app``'s document, each dependency of a route that learns the
    caller (:func:`~rx_web.identity.learns_identity`) carries the declarations of
    :func:`documented_identity` (the bearer scheme, X-Practitioner) as if
    :func:`get_identity` were its first dependency, and each :func:`documented_as` one those
    it names, so the document says what FastAPI says of them: the security requirement and
    scheme, the headers' schemas and places among the route's parameters, and the 422 their
    patterns imply. Generating the document is synchronous, so no request is solved
    meanwhile."""
    identity = get_dependant(path="", call=documented_identity)
    flatten = getattr(routing, "iter_route_contexts", None)
    changed: list[tuple[Dependant, list[Dependant], list[Any]]] = []

    def declare(dependant: Dependant) -> None:
        for sub in dependant.dependencies:
            declare(sub)
            if any(sub is c[0] for c in changed):
                continue
            shown = getattr(sub.call, "documented_as", None)
            if shown is not None:
                declared = get_dependant(path="", call=shown)
            elif learns_identity(sub.call):
                declared = identity
            else:
                continue
            changed.append((sub, sub.dependencies, sub.header_params))
            sub.dependencies = [*declared.dependencies, *sub.dependencies]
            sub.header_params = [*sub.header_params, *declared.header_params]

    try:
        for route in flatten(app.routes) if flatten else app.routes:  # as FastAPI documents them
            dependant = getattr(route, "dependant", None)
            if isinstance(dependant, Dependant):
                declare(dependant)
        yield
    finally:
        for sub, dependencies, header_params in changed:
            sub.dependencies, sub.header_params = dependencies, header_params


def document_common_answers(app: FastAPI, rate_limited: bool, body_limited: bool) -> None:
    """Make ``app.openapi()`` include :func:`common_answers` on every operation."""
    generate = app.openapi
    done = False

    def openapi() -> dict[str, Any]:
        nonlocal done
        with _declarations_shown(app) if not done else nullcontext():
            schema = generate()  # FastAPI's own, cached on the app after the first call
        if not done:
            paths = schema.get("paths", {})
            for route in api_routes(app):
                if not route.include_in_schema:
                    continue
                for method in route.methods or ():
                    operation = paths.get(route.path_format, {}).get(method.lower())
                    if operation is None:
                        continue
                    responses = operation.setdefault("responses", {})
                    for code, answer in common_answers(route, rate_limited, body_limited).items():
                        responses.setdefault(code, answer)
                    for code, answer in responses.items():
                        if code[0] in "45":
                            answer["content"] = PROBLEM_CONTENT
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            schemas["Problem"] = PROBLEM_SCHEMA
            done = True
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
