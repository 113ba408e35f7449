"""The FastAPI application every service starts from: lifespan-built container, problem+json
errors, /health, /ready and /metrics, request metrics, authentication, rate limits, body size limits, security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from rx_telemetry.metrics import PROBES
from rx_telemetry.pool import add_pool_probe
from sqlalchemy.engine import Engine

from .auth import Authenticator, AuthSettings
from .gate import Gate
from .headers import SecureHeaders
from .health import health_router
from .limits import BodyLimits
from .metrics import install_telemetry
from .openapi import document_common_answers
from .problems import install_problem_handlers
from .ratelimit import RateLimiter, RateLimitSettings
from .routers import include_routes
from .settings import Environment


class HasEngine(Protocol):
    engine: Engine


NATIVE_TELEMETRY: TelemetryConfig = {"metrics": False, "logs": False}
"""FastAPI's own OpenTelemetry: spans when a tracer provider is installed (``rx_telemetry``),
no metrics or logs through OpenTelemetry (requests are counted in Prometheus by
``rx_web.metrics``, logs go to stderr). Left on, FastAPI looks for a global meter and logger
provider on every request, each an ``os.environ`` look-up while none is installed."""


def service_app(
    service: str,
    summary: str,
    build: Callable[[], HasEngine],
    max_body_size: int | None = None,
    larger_bodies: Mapping[str, int] | None = None,
    auth: AuthSettings | None = None,
) -> FastAPI:
    """An app whose container (engine, …) is built at startup by ``build``, not at import,
    and disposed at shutdown. Routes reach it as ``request.app.state.container``. Bodies
    over ``max_body_size`` bytes are refused with 413 before they are read in full.

    Callers authenticate with bearer tokens for the audience ``service`` (``RX_*`` settings,
    see :mod:`rx_web.auth`; ``auth`` overrides them), and are rate-limited per client."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.container = build()
        add_pool_probe(app.state.container.engine, f"{service}-api")
        yield
        PROBES.remove(f"{service}-api")
        app.state.container.engine.dispose()

    app = FastAPI(
        title=f"Referral Exchange — {service}",
        version="0.1.0",
        summary=summary,
        lifespan=lifespan,
        # Operation ids are the route functions' names (read_referral, accept_referral…):
        # stable, readable in generated clients, and what OpenAPI links point at.
        generate_unique_id_function=lambda route: route.name,
        telemetry=NATIVE_TELEMETRY,
    )
    auth = auth or AuthSettings()
    limits = RateLimitSettings()
    rate_limited = limits.per_second > 0
    # What rx_web.security.install_security adds (authentication outside the rate limit, so
    # that requests are counted per client), and the body size limit inside both, in one
    # layer; the security headers go on in the telemetry's (one layer, the same place).
    app.state.authenticator = Authenticator.from_settings(auth, service)
    app.add_middleware(
        Gate,
        authenticator=app.state.authenticator,
        rate_limit=RateLimiter(limits.buckets(), limits.processes) if rate_limited else None,
        body_limit=BodyLimits(max_body_size, larger_bodies) if max_body_size is not None else None,
    )
    document_common_answers(app, rate_limited, body_limited=max_body_size is not None)
    install_problem_handlers(app)
    include_routes(app, health_router(service, lambda: app.state.container.engine))
    install_telemetry(app, service, SecureHeaders(hsts=auth.env is Environment.PRODUCTION))
    return app
