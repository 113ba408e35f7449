"""The portal's web app: server-rendered pages (Jinja2, htmx for the live worklist) in the
NHS.UK design system, all of it served from here under a strict Content-Security-Policy."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from rx_web.headers import SecurityHeaders
from rx_web.metrics import install_telemetry
from rx_web.settings import Environment
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..adapters.referrals_api import ApiError
from ..bootstrap import bootstrap
from ..config import Settings, get_settings
from . import routes_auth, routes_create, routes_referral, routes_worklist
from .web import TEMPLATES, CsrfRefused, NotSignedIn, page, problem_page, signin_redirect, templates

STATIC = TEMPLATES.parent / "static"
COOKIE = "rx_portal"


def content_security_policy(issuer_url: str) -> str:
    """Scripts, styles, images and fonts from this app only, no inline script or style; forms
    post here, and sign-out goes on to the issuer (form-action covers the redirect)."""
    parts = urlsplit(issuer_url)
    issuer = f"{parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        f"frame-ancestors 'none'; form-action 'self' {issuer}"
    )


class ContentSecurityPolicy:
    """Sets the portal's policy on every response (inside the shared security headers, which
    would otherwise add the services' looser HTML policy)."""

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app, self.policy = app, policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"content-security-policy", self.policy))
            await send(message)

        await self.app(scope, receive, with_policy if scope["type"] == "http" else send)


_REMOTE_FONT = re.compile(r"@font-face\{[^}]*https?://[^}]*\}")


def design_system_css(path: Path) -> Callable[[], str]:
    """The design system's stylesheet without its @font-face rules for the NHS font, which is
    licensed for and served from NHS.UK's own domain: pages here fall back to Arial (the
    design system's own fallback) and load nothing from elsewhere."""

    @lru_cache(maxsize=1)
    def load() -> str:
        return _REMOTE_FONT.sub("", path.read_text())

    return load


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.container = bootstrap(settings)
        yield
        await app.state.container.http.aclose()
        app.state.container.engine.dispose()

    app = FastAPI(
        title="Referral Exchange — portal",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.templates = templates()
    assets = settings.assets_dir
    stylesheet = design_system_css(assets / "nhsuk-frontend/dist/nhsuk/nhsuk-frontend.min.css")

    # Registered before the /nhsuk mount, which would otherwise answer first.
    @app.get("/nhsuk/nhsuk-frontend.min.css", include_in_schema=False)
    def nhsuk_css() -> Response:
        return Response(stylesheet(), media_type="text/css")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount(
        "/nhsuk",
        StaticFiles(directory=assets / "nhsuk-frontend/dist/nhsuk", check_dir=False),
        name="nhsuk",
    )
    # The design system's stylesheet asks for its icons at /assets/images/….
    app.mount(
        "/assets",
        StaticFiles(directory=assets / "nhsuk-frontend/dist/nhsuk/assets", check_dir=False),
        name="assets",
    )
    app.mount(
        "/htmx", StaticFiles(directory=assets / "htmx.org/dist", check_dir=False), name="htmx"
    )
    if settings.rx_env is Environment.DEVELOPMENT:
        # The accessibility checker, for the browser tests to load under this same policy.
        app.mount(
            "/dev/axe", StaticFiles(directory=assets / "axe-core", check_dir=False), name="axe"
        )

    app.include_router(routes_auth.router)
    app.include_router(routes_create.router)
    app.include_router(routes_worklist.router)
    app.include_router(routes_referral.router)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "service": "portal"}

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        return signin_redirect(request, exc.expired)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _exc: CsrfRefused) -> Response:
        return page(request, "csrf.html", None, 403)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> Response:
        return problem_page(request, exc)

    @app.exception_handler(404)
    async def _not_found(request: Request, _exc: Exception) -> Response:
        return page(request, "not_found.html", None, 404)

    # Added innermost first: cookies, then our policy, then the shared headers (which add
    # only what is missing, so they keep our policy).
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        session_cookie=COOKIE,
        max_age=None,  # gone when the browser closes; the server ends it sooner
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(ContentSecurityPolicy, policy=content_security_policy(settings.issuer_url))
    app.add_middleware(SecurityHeaders, hsts=settings.rx_env is Environment.PRODUCTION)
    install_telemetry(app, "portal")
    return app
