"""The audit API (``python -m audit api``): the log, the live stream, verification, the
evaluation figures and the ops console."""

from __future__ import annotations

from fastapi import FastAPI
from rx_web.app import service_app

from . import routes, stream
from .bootstrap import Container, bootstrap
from .config import Settings, get_settings
from .console import install_console


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    app = service_app(
        "audit",
        "Tamper-evident log of every event on every topic, for operations staff.",
        lambda: container or bootstrap(settings or get_settings()),
    )
    app.include_router(routes.router)
    app.include_router(stream.router)
    install_console(app)
    return app
