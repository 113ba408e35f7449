"""The referrals API application (``python -m referrals api``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from rx_web.app import service_app
from rx_web.problems import problem_response

from ...bootstrap import Container, bootstrap
from ...config import Settings, get_settings
from ...domain.errors import InvalidIdentifier, ReferralError
from .routes_referrals import router as referrals_router


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """Build the app; the container (database engine…) is made at startup, not import."""
    app = service_app(
        "referrals",
        "Create and read referrals between health and care organisations.",
        lambda: container or bootstrap(settings or get_settings()),
    )

    @app.exception_handler(ReferralError)
    async def _domain_error(request: Request, exc: ReferralError) -> JSONResponse:
        extra = {}
        if isinstance(exc, InvalidIdentifier):
            extra["errors"] = [{"field": exc.field, "rule": exc.rule, "message": str(exc)}]
        return problem_response(exc.status, exc.title, str(exc), request.url.path, **extra)

    app.include_router(referrals_router)
    return app
