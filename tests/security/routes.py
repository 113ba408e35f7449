"""Reading a service's route table for the authorisation tests: what each route needs (an
identity, particular roles, path parameters) and how to build a request to it from its
OpenAPI description. Nothing here is a list of routes: everything comes from ``app.routes``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from rx_contracts import Role
from rx_web.identity import learns_identity
from rx_web.openapi import dependency_calls, required_roles

FRAMEWORK_PAGES = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
"""Routes FastAPI adds itself (the API description and its viewers): public, no data."""


@dataclass(frozen=True)
class RouteInfo:
    """One method of one route of one service."""

    service: str
    method: str
    path: str
    route: Any
    """The route as the app serves it: an APIRoute, or (FastAPI ≥ 0.165, routers included
    lazily) a RouteContext with the including routers' prefix and dependencies applied."""

    @property
    def key(self) -> str:
        return f"{self.service} {self.method} {self.path}"

    @property
    def path_params(self) -> list[str]:
        """Declared by the route function or by one of its dependencies."""
        names = (p.name for d in dependants(self.route.dependant) for p in d.path_params)
        return list(dict.fromkeys(names))

    @property
    def authenticated(self) -> bool:
        """Whether the route learns its caller (rx_web.identity.learns_identity)."""
        return any(learns_identity(call) for call in dependency_calls(self.route.dependant))

    @property
    def required_roles(self) -> frozenset[Role] | None:
        """The roles a ``require_roles`` check on this route lets through, if it has one."""
        return required_roles(self.route.dependant)


def dependants(dependant: Dependant) -> Iterator[Dependant]:
    """``dependant`` and its dependencies', depth first."""
    yield dependant
    for sub in dependant.dependencies:
        yield from dependants(sub)


def routes_of(service: str, app: FastAPI) -> tuple[list[RouteInfo], list[Any]]:
    """Every API route method of ``app``, and the routes that are not API routes (mounts,
    plain Starlette routes) other than FastAPI's own pages."""
    flatten = getattr(routing, "iter_route_contexts", None)
    routes = list(flatten(app.routes)) if flatten else list(app.routes)
    api: list[RouteInfo] = []
    other: list[Any] = []
    for route in routes:
        if isinstance(getattr(route, "original_route", route), APIRoute):
            api += [
                RouteInfo(service, method, route.path, route)
                for method in sorted(set(route.methods) - {"HEAD"})
            ]
        elif getattr(route, "path", None) not in FRAMEWORK_PAGES:
            other.append(route)
    return api, other


def mounted_operations(service: str, app: FastAPI, prefix: str) -> list[RouteInfo]:
    """The FHIR instance operations (``…/{id}/$name``: steps on one referral) of the app
    mounted at ``prefix`` inside ``app``, with their paths as callers see them."""
    [mount] = [r for r in app.routes if getattr(r, "path", None) == prefix]
    flatten = getattr(routing, "iter_route_contexts", None)
    routes = list(flatten(mount.routes)) if flatten else list(mount.routes)
    return [
        RouteInfo(service, method, f"{prefix}{route.path}", route)
        for route in routes
        if isinstance(getattr(route, "original_route", route), APIRoute) and "}/$" in route.path
        for method in sorted(set(route.methods) - {"HEAD"})
    ]


@dataclass(frozen=True)
class RequestShape:
    """What a valid-looking request to a route carries, from its OpenAPI operation."""

    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    params: dict[str, str] | None = None

    def kwargs(self) -> dict[str, Any]:
        found: dict[str, Any] = {"params": self.params or {}}
        if self.content is not None:
            found["content"] = self.content
        elif self.json is not None:
            found["json"] = self.json
        return found


def request_shape(app: FastAPI, info: RouteInfo) -> RequestShape:
    """A body from the schema's first example (JSON) or a small text document (uploads), and
    every required query parameter from its example."""
    document = app.openapi()
    operation = document["paths"].get(info.path, {}).get(info.method.lower(), {})
    params = {
        p["name"]: str(_example(p, document) or "matrix.txt")
        for p in operation.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    }
    content = operation.get("requestBody", {}).get("content", {})
    if not content:
        return RequestShape(params=params)
    if "application/json" in content:
        return RequestShape(json=_example(content["application/json"], document), params=params)
    media_type = "text/plain" if "text/plain" in content else next(iter(content))
    return RequestShape(content=b"matrix document", content_type=media_type, params=params)


def json_body_schema(app: FastAPI, info: RouteInfo) -> dict[str, Any] | None:
    """The resolved JSON schema of the route's request body, if it takes a JSON object."""
    document = app.openapi()
    operation = document["paths"].get(info.path, {}).get(info.method.lower())
    if operation is None:  # a route kept out of the API description (a redirect): no body
        return None
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    schema = _resolve(content["application/json"].get("schema", {}), document)
    if "anyOf" in schema and "type" not in schema:  # an optional body: Model | None
        # (an object's own anyOf, a rule between its fields, leaves it an object)
        options = [_resolve(s, document) for s in schema["anyOf"]]
        schema = next((s for s in options if s.get("type") == "object"), {})
    return schema if schema.get("type") == "object" else None


def _example(holder: dict[str, Any], document: dict[str, Any]) -> Any:
    for place in (holder, _resolve(holder.get("schema", {}), document)):
        examples = place.get("examples")
        if isinstance(examples, list) and examples:
            return examples[0]
        if isinstance(examples, dict) and examples:
            first = next(iter(examples.values()))
            return first.get("value") if isinstance(first, dict) else first
        if "example" in place:
            return place["example"]
    return None


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    name = ref.rsplit("/", 1)[-1]
    resolved: dict[str, Any] = document["components"]["schemas"][name]
    return resolved
