"""The audit API (``python -m audit api``): the log, the live stream, verification, the
evaluation figures and the ops console."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from rx_web.app import service_app
from rx_web.problems import problem_response
from rx_web.routers import include_routes

from ...bootstrap import Container, bootstrap
from ...config import Settings, get_settings
from ...domain.errors import AuditError
from .routes_console import install_console
from .routes_entries import router as entries_router
from .routes_figures import router as figures_router
from .routes_pipeline import router as pipeline_router
from .routes_stream import router as stream_router
from .routes_verify import router as verify_router


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """Build the app; the container (database engine…) is made at startup, not import."""
    app = service_app(
        "audit",
        "Tamper-evident log of every event on every topic, for operations staff.",
        lambda: container or bootstrap(settings or get_settings()),
    )

    @app.exception_handler(AuditError)
    async def _domain_error(request: Request, exc: AuditError) -> JSONResponse:
        return problem_response(exc.status, exc.title, str(exc), request.url.path)

    include_routes(app, entries_router)
    include_routes(app, verify_router)
    include_routes(app, figures_router)
    include_routes(app, stream_router)
    include_routes(app, pipeline_router)
    install_console(app)
    return app
