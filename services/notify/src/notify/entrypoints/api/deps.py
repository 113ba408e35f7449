"""Request dependencies: who is calling, the unit of work, If-Match and Idempotency-Key.

All ``async def`` although none awaits: FastAPI would run a plain ``def`` dependency in its
thread pool, and that hand-over costs more than these functions do."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from rx_web.identity import get_identity, reads_identity

from ...bootstrap import Container
from ...domain.caller import Caller
from ...service_layer.unit_of_work import UnitOfWork


@reads_identity
async def get_caller(request: Request) -> Caller:
    """The authenticated caller (see ``rx_web.identity``) as the domain sees it."""
    return Caller.of(await get_identity(request))


async def get_uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.container.uow()
    uow.correlation_id = request.headers.get("x-correlation-id")
    return uow


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ETAG_PATTERN = r'^\s*(W/)?"?[0-9]{1,18}"?\s*$'
"""An ETag as we issue it ("3"), weak or bare forms accepted."""


KEY_PATTERN = r"^[ -~]{1,255}$"
"""An Idempotency-Key: 1-255 printable ASCII characters."""


def parse_etag(value: str) -> int:
    return int(value.strip().removeprefix("W/").strip('"'))


async def get_if_match(
    if_match: Annotated[
        str,
        Header(
            description='The ETag of the version you read, e.g. "3".',
            examples=['"3"'],
            pattern=ETAG_PATTERN,
        ),
    ],
) -> int:
    """Without one the change is refused with 428 (see ``rx_web.problems``)."""
    return parse_etag(if_match)


async def get_idempotency_key(
    idempotency_key: Annotated[
        str,
        Header(
            description="Unique per logical request (1-255 printable ASCII characters, a UUID "
            "is ideal); a retry with the same key and body gets the original result.",
            examples=["5f0c6e4e-52b4-4b0e-9d7e-6f2f7d1c8a11"],
            pattern=KEY_PATTERN,
        ),
    ],
) -> str:
    return idempotency_key


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests 'the same' for idempotency: route and body."""
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


CallerDep = Annotated[Caller, Depends(get_caller)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
ContainerDep = Annotated[Container, Depends(get_container)]
IfMatch = Annotated[int, Depends(get_if_match)]
IdempotencyKey = Annotated[str, Depends(get_idempotency_key)]
