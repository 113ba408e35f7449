"""``GET /health`` (the process answers) and ``GET /ready`` (its database answers)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import Engine


def health_router(service: str, engine: Callable[[], Engine]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health", summary="Liveness: the process is up")
    def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/ready", summary="Readiness: the service's database answers")
    def ready() -> JSONResponse:
        try:
            with engine().connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            body = {"status": "unavailable", "service": service, "database": str(exc)[:200]}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ready", "service": service, "database": "ok"})

    return router
