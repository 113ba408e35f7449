"""A referral's documents: DocumentReference create (an upload), read and search (by the
ServiceRequest), Binary read (the bytes, or a Binary resource for a client that asks for FHIR
JSON). The same handlers, rules and access records as the JSON API's attachments: an upload is
the JSON API's upload, a description is recorded as the list is (``attachment-list``), the
bytes as the download is (``attachment``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from rx_contracts import AccessedData

from ...adapters.idempotency import StoredResponse
from ...domain.attachments import Attachment, AttachmentRejected
from ...domain.caller import Caller
from ...domain.errors import ReferralNotFound
from ...domain.identifiers import Identifier
from ...service_layer import handlers
from ...service_layer.unit_of_work import UnitOfWork
from ..api.routes_attachments import download
from . import documents, identifiers, inbound
from .deps import (
    FHIR_JSON,
    CallerDep,
    IdempotencyKeyHeader,
    IfNoneExistHeader,
    ParseFailed,
    Uow,
    fhir_response,
    parse,
    read_json,
)
from .outcomes import FhirProblem
from .resources import etag
from .routes_search import Params, entry, full_url, searchset
from .writes import idempotent

router = APIRouter()
UPLOAD_PATH = "/fhir/R4/DocumentReference"
"""Where documents are uploaded (allowed a body the size of a base64 attachment)."""

SEARCH_PARAMS = frozenset({"related", "identifier", "_format"})
FHIR_FORMATS = frozenset({"json", FHIR_JSON, "application/json+fhir"})


def _described(request: Request, attachment: Attachment) -> documents.Json:
    return documents.document_reference(attachment, full_url(request, f"Binary/{attachment.id}"))


@router.post("/DocumentReference", name="create DocumentReference", status_code=201)
async def create_document_reference(
    request: Request,
    caller: CallerDep,
    key: IdempotencyKeyHeader = None,
    if_none_exist: IfNoneExistHeader = None,
) -> JSONResponse:
    """Attach a document (``content[0].attachment``: ``contentType``, base64 ``data``, the file
    name as ``title``) to the referral ``context.related`` names: the JSON API's upload, with
    its rules (type, size, file name, who may attach, while the referral is open). With
    If-None-Exist ``identifier=system|value`` (its ``masterIdentifier``), only if none of the
    referral's documents the caller's organisation uploaded has that identifier: one that has
    is the answer (200), nothing stored; several are a 412."""
    wanted = identifiers.condition(if_none_exist, "DocumentReference")
    body = await read_json(request)
    try:
        sent = parse(inbound.DocumentReference, body, "DocumentReference")
    except ParseFailed as failed:
        return failed.response()
    upload = documents.Upload(sent)
    identifiers.check_condition(wanted, upload.identifier, "DocumentReference.masterIdentifier")
    same = identifiers.conditioned(upload.fingerprint(body), if_none_exist)
    return await run_in_threadpool(_create, request, caller, key, same, upload, wanted)


def _create(
    request: Request,
    caller: Caller,
    key: str | None,
    same: Any,
    upload: documents.Upload,
    wanted: Identifier | None,
) -> JSONResponse:
    def execute(uow: UnitOfWork) -> tuple[Attachment, bool]:
        if wanted is not None:
            existing = handlers.uploaded_with_identifier(upload.referral_id, wanted, caller, uow)
            if len(existing) > 1:
                raise identifiers.several(len(existing), "your documents of this referral")
            if existing:
                return existing[0], False
        try:
            attachment = handlers.add_attachment(
                upload.referral_id,
                caller,
                upload.content_type,
                upload.filename,
                upload.content,
                uow,
                upload.identifier,
            )
        except AttachmentRejected as exc:
            raise documents.rejected(exc) from exc
        return attachment, True

    def present(done: tuple[Attachment, bool]) -> StoredResponse:
        attachment, created = done
        # Written once: no history to read, so the Location is the resource itself.
        where = full_url(request, f"DocumentReference/{attachment.id}")
        headers = {"ETag": etag(1), "Location": where}
        return StoredResponse(201 if created else 200, _described(request, attachment), headers)

    return idempotent(request, caller, key, same, None, execute, present)


@router.get("/DocumentReference/{resource_id}", name="read DocumentReference")
def read_document_reference(
    resource_id: str, request: Request, caller: CallerDep, uow: Uow
) -> JSONResponse:
    """One document of a referral the caller may see; recorded as an attachment-list read."""
    attachment = handlers.find_attachment(resource_id, caller, uow, AccessedData.ATTACHMENT_LIST)
    return fhir_response(_described(request, attachment), headers={"ETag": etag(1)})


@router.get("/DocumentReference", name="search DocumentReference")
def search_document_references(request: Request, caller: CallerDep, uow: Uow) -> JSONResponse:
    """A referral's documents (``related``), or those with the uploader's identifier
    (``identifier``), or both; oldest first, one page (they are few); recorded as the JSON
    API's list is; nothing of a referral the caller may not see."""
    params = Params(request, SEARCH_PARAMS)
    related, identifier = params.values("related"), params.identifier()
    by_referral = len(related) == 1 and related[0].startswith("ServiceRequest/")
    if len(related) > 1 or (related and not by_referral) or (not related and not identifier):
        raise FhirProblem(
            400,
            "search documents by one referral (related=ServiceRequest/{id}), by identifier "
            "(identifier=system|value), or both",
            "related",
        )
    referral_id = related[0].removeprefix("ServiceRequest/") if related else None
    try:
        if identifier is not None:
            found = [
                a
                for a in handlers.attachments_with_identifier(identifier, caller, uow)
                if referral_id is None or a.referral_id == referral_id
            ]
        else:
            found = handlers.list_attachments(referral_id or "", caller, uow)
    except ReferralNotFound:
        found = []  # a search finds nothing of what the caller may not see
    entries = [entry(request, _described(request, a)) for a in found]
    return fhir_response(searchset(request, entries, None))


@router.get("/Binary/{resource_id}", name="read Binary")
def read_binary(resource_id: str, request: Request, caller: CallerDep, uow: Uow) -> Response:
    """The document's bytes with its own content type, or, asked for FHIR JSON (Accept or
    ``_format``), a Binary resource carrying them; recorded as the JSON API's download is."""
    attachment = handlers.find_attachment(resource_id, caller, uow, AccessedData.ATTACHMENT)
    if _wants_fhir(request):
        return fhir_response(documents.binary(attachment), headers={"ETag": etag(1)})
    return download(attachment, etag(1))


def _wants_fhir(request: Request) -> bool:
    """Whether the client asked for the resource rather than the bytes (FHIR's Binary read)."""
    wanted = request.query_params.get("_format")
    if wanted is not None:
        return wanted in FHIR_FORMATS
    accept = request.headers.get("accept", "")
    return any(part.split(";", 1)[0].strip() in FHIR_FORMATS for part in accept.split(","))
