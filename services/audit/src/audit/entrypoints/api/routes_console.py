"""The ops console at ``/ops``: plain HTML, CSS and JavaScript shipped inside this package (no
build step, no CDN). The page shell and its assets need no identity; everything they show
comes from the ops-only API, which the page calls with the token the user signs in for."""

from __future__ import annotations

import html
from importlib.resources import files
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from rx_web.auth import AuthSettings
from starlette.responses import Response

router = APIRouter(tags=["ops console"])


def token_url(request: Request) -> str:
    """Where the page asks the issuer for tokens, as a browser reaches it."""
    configured: str | None = request.app.state.container.settings.console_token_url
    return configured or f"{AuthSettings().token_issuer.rstrip('/')}/oauth2/token"


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(token_endpoint: str, notify_url: str | None = None) -> str:
    """Only this service's own files run; the page talks to this service, the issuer and
    (for subscriptions' health) the notify API."""
    connect = " ".join(origin(u) for u in (token_endpoint, notify_url) if u)
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; connect-src 'self' {connect}; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


@router.get("/ops", response_class=HTMLResponse, summary="The ops console (HTML page)")
def console(request: Request) -> Response:
    endpoint = token_url(request)
    notify: str | None = request.app.state.container.settings.console_notify_url
    page = (files("audit") / "static" / "ops.html").read_text(encoding="utf-8")
    page = page.replace("{{TOKEN_URL}}", html.escape(endpoint, quote=True))
    page = page.replace("{{NOTIFY_URL}}", html.escape((notify or "").rstrip("/"), quote=True))
    return HTMLResponse(
        page,
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": content_security_policy(endpoint, notify),
        },
    )


@router.get("/ops/", include_in_schema=False)
def console_slash() -> Response:
    return RedirectResponse("/ops")


def install_console(app: FastAPI) -> None:
    """Serve the page at /ops and its assets (the package's ``static/``) at
    /ops/assets/<file>."""
    app.include_router(router)
    app.mount("/ops/assets", StaticFiles(packages=[("audit", "static")]), name="ops-assets")
