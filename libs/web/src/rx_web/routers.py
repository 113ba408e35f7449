"""A router's routes added to an app itself, instead of the router included lazily.

FastAPI 0.165 includes a router lazily: on every request the app's router asks each included
router whether one of its routes matches (each route matched in a context of its own), then
asks the one that answered again, to handle the request. The referrals API pays that for its
five routers on every request (bench/RESULTS.md). :func:`include_routes` does what
``include_router`` did before: each route is made again on the app with what the inclusion
would have combined into it (the app's tags, responses, dependencies, unique ids…), through
``add_api_route``, FastAPI's public way of adding one; the app's router then matches each
request once against plain routes, as for routes declared on the app.

The routes, their documents and their answers are the same (``libs/web/tests/test_routers.py``
compares them with ``include_router``'s). A router with anything of its own that the app would
have to combine, or a route whose constructor takes an argument this module does not pass on
(a FastAPI upgrade adding one), is refused at start rather than included differently."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute

PASSED_ON = (
    "response_model",
    "status_code",
    "tags",
    "dependencies",
    "summary",
    "description",
    "response_description",
    "responses",
    "deprecated",
    "name",
    "methods",
    "operation_id",
    "response_model_include",
    "response_model_exclude",
    "response_model_by_alias",
    "response_model_exclude_unset",
    "response_model_exclude_defaults",
    "response_model_exclude_none",
    "include_in_schema",
    "response_class",
    "callbacks",
    "openapi_extra",
    "generate_unique_id_function",
    "strict_content_type",
    "max_body_size",
    "form_limits",
)
"""A route's attributes given again to ``add_api_route``, each under its own name."""
SET_BY_THE_APP = frozenset({"self", "path", "endpoint", "dependency_overrides_provider"})


def include_routes(app: FastAPI, router: APIRouter) -> None:
    """``app.include_router(router)`` (no arguments of the inclusion), made eagerly."""
    unknown = set(inspect.signature(APIRoute.__init__).parameters) - set(PASSED_ON)
    unknown -= SET_BY_THE_APP
    if unknown:
        raise RuntimeError(
            f"FastAPI's APIRoute takes {sorted(unknown)}, which rx_web.routers does not pass "
            "on: include the router with include_router, or pass them on"
        )
    own = {
        "dependencies": router.dependencies,
        "callbacks": router.callbacks,
        "deprecated": router.deprecated,
        "responses": router.responses,
        "on_startup": router.on_startup,
        "on_shutdown": router.on_shutdown,
        "max_body_size": router.max_body_size,
        "form_limits": router.form_limits,
        "include_in_schema": not router.include_in_schema,
        "default_response_class": not isinstance(router.default_response_class, DefaultPlaceholder),
        "generate_unique_id_function": not isinstance(
            router.generate_unique_id_function, DefaultPlaceholder
        ),
    }
    if any(own.values()):
        raise ValueError(
            f"{[name for name, value in own.items() if value]} of the router would be combined "
            "into its routes by include_router: include it with include_router"
        )
    for route in router.routes:
        if type(route) is not APIRoute:
            raise ValueError(f"{route!r} is not a plain APIRoute: include the router instead")
        passed: dict[str, Any] = {name: getattr(route, name) for name in PASSED_ON}
        if passed["form_limits"] is None:
            del passed["form_limits"]  # as add_api_route leaves it for a route without any
        app.router.add_api_route(route.path, route.endpoint, **passed)
