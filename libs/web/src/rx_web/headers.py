"""Security headers on every response: no sniffing, no framing, no referrer, no caching of
API answers (they carry patient data), and a Content Security Policy."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
"""JSON and documents: nothing may run or load."""

HTML_CSP = (
    "default-src 'self'; "
    # The interactive API docs load Swagger UI from its CDN and start it with an inline script.
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
"""Pages served by the services themselves (API docs, the ops console)."""

HSTS = "max-age=31536000; includeSubDomains"


def _wanted(csp: str, hsts: bool) -> tuple[tuple[bytes, bytes], ...]:
    wanted = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cache-Control": "no-store",
        "Content-Security-Policy": csp,
    }
    if hsts:
        wanted["Strict-Transport-Security"] = HSTS
    return tuple(
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in wanted.items()
    )


class SecureHeaders:
    """Adds the security headers to a response's start message (built once, at start)."""

    def __init__(self, hsts: bool = False) -> None:
        self._api, self._html = _wanted(API_CSP, hsts), _wanted(HTML_CSP, hsts)

    def __call__(self, message: Message) -> None:
        """Each header the route did not set itself (by name, as Starlette's headers match
        them) appended, in a new list as ``MutableHeaders`` would leave it."""
        headers = message["headers"] = list(message["headers"])
        present = set()
        html = False
        for name, value in headers:
            if name == b"content-type" and b"content-type" not in present:
                html = value.decode("latin-1").startswith("text/html")
            present.add(name)
        headers.extend(h for h in (self._html if html else self._api) if h[0] not in present)


class SecurityHeaders:
    """ASGI middleware adding the headers a route did not set itself (a route may choose its
    own Cache-Control, e.g. the JWKS or an event stream)."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app, self.secure = app, SecureHeaders(hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = self.secure

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                secure(message)
            await send(message)

        await self.app(scope, receive, send_with_headers)
