"""What a service's request passes between its edge and its routes, as one ASGI layer."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import Authenticator, authenticate_request
from .limits import BodyLimits
from .ratelimit import RateLimiter


class Gate:
    """Authentication, the per-client rate limit and the body size limit in one pure ASGI
    layer, outermost first as the separate middlewares (:class:`rx_web.auth.Authenticate`,
    :class:`rx_web.ratelimit.RateLimit`, :class:`rx_web.limits.BodySizeLimit`) do it, with
    their answers: the caller is named, then counted (429), then its body held to the limit
    (413). One call a request instead of three: each layer costs every request a coroutine."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator | None = None,
        rate_limit: RateLimiter | None = None,
        body_limit: BodyLimits | None = None,
    ) -> None:
        self.app, self.authenticator = app, authenticator
        self.rate_limit, self.body_limit = rate_limit, body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.authenticator is not None:
            await authenticate_request(self.authenticator, scope)
        if self.rate_limit is not None and not await self.rate_limit.admits(scope, send):
            return
        if self.body_limit is not None:
            await self.body_limit.guard(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)
