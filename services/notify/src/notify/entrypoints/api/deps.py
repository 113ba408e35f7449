"""Request dependencies: who is calling, the unit of work, and a write's caller with its
If-Match or Idempotency-Key.

All ``async def`` although none awaits: FastAPI would run a plain ``def`` dependency in its
thread pool, and that hand-over costs more than these functions do."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from pydantic import WithJsonSchema
from rx_web.checked_headers import (
    ETAG_PATTERN,
    IDEMPOTENCY_KEY,
    IF_MATCH,
    KEY_PATTERN,
    CheckedHeader,
    documented_if_match,
    header_errors,
    read_headers,
    version_of,
)
from rx_web.identity import documented_identity, get_identity, reads_identity
from rx_web.openapi import documented_as
from rx_web.submission import Submission, documented_submission, read_submission

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


OptionalIfMatchHeader = Annotated[
    str | None,
    Header(pattern=ETAG_PATTERN, description='Optional: the version you read, W/"3".'),
    WithJsonSchema({"type": "string", "pattern": ETAG_PATTERN}),
]
OptionalKeyHeader = Annotated[
    str | None,
    Header(pattern=KEY_PATTERN, description="Optional: makes a retry safe."),
    WithJsonSchema({"type": "string", "pattern": KEY_PATTERN}),
]


def documented_change(
    _caller: Annotated[None, Depends(documented_identity)],
    _if_match: Annotated[None, Depends(documented_if_match)],
) -> None:
    """Never called: what :func:`get_change` reads, as the document shows it (the caller, then
    If-Match, as two dependencies would)."""


def documented_fhir_create(
    _caller: Annotated[None, Depends(documented_identity)],
    idempotency_key: OptionalKeyHeader = None,
) -> None:
    """Never called: what :func:`get_fhir_create` reads, as the document shows it (the
    optional Idempotency-Key, first as the route's own header was, then the caller)."""


def documented_fhir_update(
    _caller: Annotated[None, Depends(documented_identity)],
    if_match: OptionalIfMatchHeader = None,
) -> None:
    """Never called: what :func:`get_fhir_update` reads, as the document shows it (the
    optional If-Match, first as the route's own header was, then the caller)."""


@dataclass(frozen=True, slots=True)
class Change:
    """The caller of a PATCH and the version its If-Match names: ``None`` when the header was
    missing or malformed (:meth:`checked_version`)."""

    caller: Caller
    version: int | None
    request: Request

    def checked_version(self) -> int:
        """The version; for an If-Match missing or malformed, FastAPI's answer (428 or 422)."""
        if self.version is None:
            raise header_errors(self.request)
        return self.version


@dataclass(frozen=True, slots=True)
class FhirWrite:
    """The caller of a FHIR write and its optional header's value (``None``: not sent);
    ``malformed`` when it breaks its pattern (:meth:`checked`)."""

    caller: Caller
    value: str | None
    malformed: bool
    request: Request

    def checked(self) -> str | None:
        """The value; for a malformed one, FastAPI's 422 (an OperationOutcome, see ``app``)."""
        if self.malformed:
            raise header_errors(self.request)
        return self.value


@documented_as(documented_submission)
@reads_identity
async def get_submission(request: Request) -> Submission[Caller]:
    """The caller (401 first, whatever the headers) and the Idempotency-Key of a POST, read in
    one dependency level rather than through ``get_caller`` and FastAPI's validation of a
    declared header: each level and each declared header costs more than what it does. A
    header missing or malformed waits for the rest of the request to be checked
    (``rx_web.checked_headers``), as FastAPI's own check did."""
    return await read_submission(request, Caller.of)


@documented_as(documented_change)
@reads_identity
async def get_change(request: Request) -> Change:
    """The caller (401 first) and the If-Match of a PATCH, as :func:`get_submission`."""
    caller = Caller.of(await get_identity(request))
    if_match = read_headers(request, IF_MATCH)
    return Change(caller, version_of(if_match[0]) if if_match else None, request)


def _optional(request: Request, header: CheckedHeader) -> tuple[str | None, bool]:
    """An optional header's value (``None``: not sent) and whether it is malformed."""
    if header.name not in request.headers:
        return None, False
    value = read_headers(request, header)  # sent: only its pattern can fail
    return (value[0], False) if value else (None, True)


@documented_as(documented_fhir_create)
@reads_identity
async def get_fhir_create(request: Request) -> FhirWrite:
    """The caller (401 first) and the optional Idempotency-Key of a FHIR create."""
    caller = Caller.of(await get_identity(request))
    return FhirWrite(caller, *_optional(request, IDEMPOTENCY_KEY), request)


@documented_as(documented_fhir_update)
@reads_identity
async def get_fhir_update(request: Request) -> FhirWrite:
    """The caller (401 first) and the optional If-Match of a FHIR update."""
    caller = Caller.of(await get_identity(request))
    return FhirWrite(caller, *_optional(request, IF_MATCH), request)


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests 'the same' for idempotency: route and body."""
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


CallerDep = Annotated[Caller, Depends(get_caller)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
ContainerDep = Annotated[Container, Depends(get_container)]
SubmissionDep = Annotated[Submission[Caller], Depends(get_submission)]
ChangeDep = Annotated[Change, Depends(get_change)]
FhirCreate = Annotated[FhirWrite, Depends(get_fhir_create)]
FhirUpdate = Annotated[FhirWrite, Depends(get_fhir_update)]
