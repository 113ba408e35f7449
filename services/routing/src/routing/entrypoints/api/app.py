"""The routing API (``python -m routing api``): directory, rules and SLA policies
(administered), decisions and what-if replay (ops)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from rx_web.app import service_app
from rx_web.problems import problem_response
from rx_web.routers import include_routes

from ...bootstrap import Container, bootstrap
from ...config import Settings, get_settings
from ...domain.errors import RoutingError
from .routes_decisions import router as decisions_router
from .routes_directory import router as directory_router
from .routes_replay import router as replay_router
from .routes_rules import router as rules_router


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """Build the app; the container (database engine…) is made at startup, not import."""
    settings = settings or (container.settings if container else get_settings())
    app = service_app(
        "routing",
        "Provider directory, versioned routing rules, SLA policies, routing decisions and "
        "what-if replay. Send a bearer token from the issuer (audience `routing`): any "
        "identity reads the directory; changes need the admin role; rules, policies, "
        "decisions and replay need ops or admin.",
        lambda: container or bootstrap(settings),
        max_body_size=1_000_000,
    )

    @app.exception_handler(RoutingError)
    async def _domain_error(request: Request, exc: RoutingError) -> JSONResponse:
        return problem_response(exc.status, exc.title, str(exc), request.url.path, **exc.extra())

    include_routes(app, directory_router)
    include_routes(app, rules_router)
    include_routes(app, decisions_router)
    include_routes(app, replay_router)
    return app
