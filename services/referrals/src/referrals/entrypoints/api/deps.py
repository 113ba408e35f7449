"""Request dependencies: who is calling, the unit of work, If-Match and Idempotency-Key.

All ``async def`` although none awaits: FastAPI would run a plain ``def`` dependency in its
thread pool, and that hand-over costs more than these functions do."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from rx_web.identity import IdentityDep

from ...domain.caller import Caller
from ...service_layer.unit_of_work import UnitOfWork


async def get_caller(identity: IdentityDep) -> Caller:
    """The authenticated caller (see ``rx_web.identity``) as the domain sees it."""
    return Caller.of(identity)


async def get_uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.container.uow()
    uow.correlation_id = request.headers.get("x-correlation-id")
    return uow


ETAG_PATTERN = r'^\s*(W/)?"?[0-9]{1,18}"?\s*$'
"""An ETag as we issue it ("3"), weak or bare forms accepted."""


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
        pattern=r"^[ -~]{1,255}$",
    ),
]


def version_of(if_match: str) -> int:
    """The version in an If-Match the header's pattern accepted."""
    return int(if_match.strip().removeprefix("W/").strip('"'))


async def get_if_match(if_match: IfMatchHeader) -> int:
    """The version the caller based its change on. Without one the change is refused with 428
    (see ``rx_web.problems``); one that is not an ETag with 422 naming the header."""
    return version_of(if_match)


async def get_idempotency_key(idempotency_key: IdempotencyKeyHeader) -> str:
    """The caller's key for this request: without one 400 (see ``rx_web.problems``), one
    that breaks the documented pattern 422 naming the header."""
    return idempotency_key


def fingerprint(method: str, path: str, if_match: int | None, body: dict[str, Any]) -> str:
    """What makes two requests 'the same' for idempotency: route, version and body."""
    canonical = json.dumps([method, path, if_match, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


CallerDep = Annotated[Caller, Depends(get_caller)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
IfMatch = Annotated[int, Depends(get_if_match)]
IdempotencyKey = Annotated[str, Depends(get_idempotency_key)]
