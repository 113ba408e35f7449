"""Request body size limit answering with problem+json (Starlette's own answers plain text)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import send_problem


class _TooLarge(HTTPException):
    """An HTTPException so that FastAPI, reading the body, passes it on as a 413 instead of
    reporting a body it could not parse (400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")


class BodyLimits:
    """How large a request's body may be, and holding it to that (:class:`BodySizeLimit`,
    :class:`rx_web.gate.Gate`)."""

    def __init__(self, max_bytes: int, larger: Mapping[str, int] | None = None) -> None:
        """``larger`` maps path patterns (regular expressions) to their own, larger limits,
        e.g. a document upload route."""
        self.default = max_bytes
        self.larger = [(re.compile(pattern), limit) for pattern, limit in (larger or {}).items()]

    def limit_for(self, path: str) -> int:
        return next(
            (limit for pattern, limit in self.larger if pattern.fullmatch(path)), self.default
        )

    async def guard(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the HTTP request ``scope`` with ``app``, its body held to the limit.

        A body whose length is declared within the limit is not counted again as it comes:
        the server delivers no more than the Content-Length, and a request with neither
        Content-Length nor Transfer-Encoding has no body (RFC 9112, 6.3); only a body of
        undeclared length (chunked) is counted."""
        limit = self.limit_for(scope.get("path", ""))
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None and length.isdigit():
            if int(length) > limit:
                await self._refuse(scope, send, limit)
                return
            if not chunked:
                await app(scope, receive, send)
                return
        elif length is None and not chunked:
            await app(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, send, limit)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        detail = f"the request body is over the limit of {limit} bytes"
        await send_problem(send, 413, "Request too large", detail, scope.get("path", ""))


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` with 413: at once when Content-Length says so, or as
    soon as a streamed body passes the limit, before the app has read it all."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app, self.limits = app, BodyLimits(max_bytes, larger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.limits.guard(self.app, scope, receive, send)
