"""Everything between the network and a route: rate limits, authentication, security headers.
Every service gets them through :func:`rx_web.app.service_app`; the issuer calls
:func:`install_security` itself."""

from __future__ import annotations

from fastapi import FastAPI

from .auth import AuthSettings, install_auth
from .headers import SecurityHeaders
from .ratelimit import RateLimit, RateLimitSettings
from .settings import Environment


def install_security(
    app: FastAPI,
    environment: Environment,
    audience: str | None = None,
    auth: AuthSettings | None = None,
    limits: RateLimitSettings | None = None,
    headers: bool = True,
) -> bool:
    """Add, innermost first: the per-client rate limit, authentication for ``audience`` (none
    for an app that authenticates its callers itself, like the issuer) and security headers
    (unless ``headers`` is False: a service adds them with its telemetry, in one layer, see
    :func:`rx_web.metrics.install_telemetry`). Authentication sits outside the rate limit so
    that requests are counted per client. Returns whether the rate limit is on."""
    limits = limits or RateLimitSettings()
    if limits.per_second > 0:
        app.add_middleware(RateLimit, buckets=limits.buckets(), processes=limits.processes)
    if audience is not None:
        install_auth(app, audience, auth)
    if headers:
        app.add_middleware(SecurityHeaders, hsts=environment is Environment.PRODUCTION)
    return limits.per_second > 0
