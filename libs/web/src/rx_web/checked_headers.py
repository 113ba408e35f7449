"""Request headers a dependency reads from the request itself rather than declaring them as
FastAPI parameters, with FastAPI's answers when one is missing or breaks its pattern.

FastAPI validates a declared header through pydantic on every request, and a dependency that
declares one costs a level of dependency solving; reading it here costs a look-up and a regex
match. The declaration stays for the API document (:func:`rx_web.openapi.documented_as`).

FastAPI lists every fault of a request in one answer: the dependencies' headers first, then
the route's own parameters and body. So a header that is wrong is not refused at once: its
errors wait in the request's scope (:func:`read_headers` answers ``None``) and are listed
first in the validation answer, whether FastAPI refuses the rest of the request
(``rx_web.problems``) or the route, finding nothing else wrong, asks for the answer
(:func:`header_errors`)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.exceptions import RequestValidationError

PENDING = "rx.header_errors"
"""Where a request's header errors wait (in its ASGI scope) for the validation answer."""

_WHITE_SPACE = r"[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""``\\s`` as pydantic-core's regex engine reads it (Unicode White_Space): Python's also
counts the separators U+001C–U+001F."""


class CheckedHeader:
    """A required header and the pattern its value must match, as a FastAPI ``Header`` with
    that ``pattern`` checks it: the same errors, in FastAPI's shape and words."""

    __slots__ = ("_match", "_message", "name", "pattern")

    def __init__(self, name: str, pattern: str) -> None:
        """``name`` as FastAPI names the header in an error (a parameter ``if_match`` is
        ``if-match``); ``pattern`` the declaration's, where ``\\s`` is the only class used
        that the two regex engines read differently."""
        self.name, self.pattern = name, pattern
        self._match = re.compile(pattern.replace(r"\s", _WHITE_SPACE)).fullmatch
        self._message = f"String should match pattern '{pattern}'"

    def error(self, value: str | None) -> dict[str, Any] | None:
        """FastAPI's error for ``value`` (``None``: the header was not sent), if any."""
        if value is None:
            return {"type": "missing", "loc": ("header", self.name), "msg": "Field required"}
        if self._match(value) is None:
            return {
                "type": "string_pattern_mismatch",
                "loc": ("header", self.name),
                "msg": self._message,
                "input": value,
                "ctx": {"pattern": self.pattern},
            }
        return None


def read_headers(request: Request, *headers: CheckedHeader) -> list[str] | None:
    """The values of ``headers`` (the first of each name, as FastAPI reads them); ``None``
    when one is missing or malformed, its errors left for the validation answer."""
    sent = request.headers
    values = [sent.get(header.name) for header in headers]
    errors = [e for h, v in zip(headers, values, strict=True) if (e := h.error(v)) is not None]
    if errors:
        request.scope[PENDING] = errors
        return None
    return values  # type: ignore[return-value]  # none missing


def header_errors(request: Request) -> RequestValidationError:
    """The validation error to raise for the header errors :func:`read_headers` left, when
    nothing else about the request was wrong."""
    return RequestValidationError(request.scope.pop(PENDING))


def pending_errors(request: Request) -> list[dict[str, Any]]:
    """The header errors the request's dependencies left (taken: listed once)."""
    errors: list[dict[str, Any]] = request.scope.pop(PENDING, None) or []
    return errors


ETAG_PATTERN = r'^\s*(W/)?"?[0-9]{1,18}"?\s*$'
"""An ETag as the services issue it ("3"), weak or bare forms accepted."""
KEY_PATTERN = r"^[ -~]{1,255}$"
"""An Idempotency-Key: 1-255 printable ASCII characters."""

# Declared by parameter name (if_match, idempotency_key): FastAPI reads the header of that
# name with hyphens, and names it so in a validation error.
IfMatchHeader = Annotated[
    str,
    Header(
        description='The ETag of the version you read, e.g. "3".',
        examples=['"3"'],
        pattern=ETAG_PATTERN,
    ),
]
IdempotencyKeyHeader = Annotated[
    str,
    Header(
        description="Unique per logical request (1-255 printable ASCII characters, a UUID "
        "is ideal); a retry with the same key and body gets the original result.",
        examples=["5f0c6e4e-52b4-4b0e-9d7e-6f2f7d1c8a11"],
        pattern=KEY_PATTERN,
    ),
]
IDEMPOTENCY_KEY = CheckedHeader("idempotency-key", KEY_PATTERN)
IF_MATCH = CheckedHeader("if-match", ETAG_PATTERN)
"""The two write headers as the services read them: the declarations' checks and answers,
without FastAPI validating them per request."""


def version_of(if_match: str) -> int:
    """The version in an If-Match the header's pattern accepted."""
    return int(if_match.strip().removeprefix("W/").strip('"'))


def documented_key(idempotency_key: IdempotencyKeyHeader) -> None:
    """Never called: the Idempotency-Key as the API document shows it."""


def documented_if_match(if_match: IfMatchHeader) -> None:
    """Never called: If-Match as the API document shows it."""
