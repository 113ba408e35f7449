"""Attachments: documents (PDF, PNG, JPEG, plain text; at most 5 MB) kept with a referral."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ...adapters.idempotency import StoredResponse
from ...domain.attachments import ALLOWED_TYPES, FILENAME, Attachment
from ...service_layer import handlers
from .deps import CallerDep, SubmissionDep, unit_of_work
from .idempotency import run_once
from .routes_referrals import IDEMPOTENT_POST, PROBLEMS

router = APIRouter(prefix="/referrals/{referral_id}/attachments", tags=["attachments"])
UPLOAD_PATH = r"/referrals/[^/]+/attachments"


class UploaderIdentifier(BaseModel):
    """The uploader's own identifier for the document (FHIR DocumentReference.masterIdentifier)."""

    system: str
    value: str


class AttachmentPublic(BaseModel):
    id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    created_at: datetime
    identifier: UploaderIdentifier | None = None


def _public(attachment: Attachment) -> AttachmentPublic:
    return AttachmentPublic.model_validate(attachment, from_attributes=True)


@router.post(
    "",
    status_code=201,
    response_model=AttachmentPublic,
    summary="Attach a document",
    responses={
        **PROBLEMS,
        **IDEMPOTENT_POST,
        403: {"description": "Only the referrer or the assigned organisation may attach"},
        409: {"description": "The referral is completed or cancelled"},
        413: {"description": "Over 5 MB"},
        415: {"description": "Not an accepted type, or the bytes are not what Content-Type says"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The file's bytes, with its Content-Type.",
            # At least one byte; that the bytes are what the type says (a PDF's, PNG's or JPEG's
            # signature, UTF-8 text without NUL) cannot be written here: otherwise 415.
            "content": {
                t: {"schema": {"type": "string", "format": "binary", "minLength": 1}}
                for t in ALLOWED_TYPES
            },
        }
    },
)
async def upload_attachment(
    referral_id: str,
    request: Request,
    submission: SubmissionDep,
    filename: Annotated[
        str,
        Query(
            description="The document's file name: letters, digits and _ first, then those, "
            "spaces and . ( ) -; at most 200 characters.",
            examples=["discharge-summary.pdf"],
            json_schema_extra={"pattern": FILENAME.pattern},
        ),
    ],
    # Documented as the request body's media types, not as a parameter of its own.
    content_type: Annotated[str, Header(include_in_schema=False)] = "",
) -> JSONResponse:
    """Send the document as the raw request body with its Content-Type (application/pdf,
    image/png, image/jpeg or text/plain). The content is checked against that type."""
    caller, key = submission.caller, submission.checked_key()
    content = await request.body()

    def present(attachment: Attachment) -> StoredResponse:
        return StoredResponse(201, _public(attachment).model_dump(mode="json"), {})

    fingerprint_body = {
        "filename": filename,
        "content_type": content_type,
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    return await run_in_threadpool(
        run_once,
        request,
        caller,
        key,
        fingerprint_body,
        None,
        lambda uow: handlers.add_attachment(
            referral_id, caller, content_type, filename, content, uow
        ),
        present,
    )


@router.get(
    "",
    response_model=list[AttachmentPublic],
    summary="List a referral's attachments",
    responses=PROBLEMS,
)
def list_attachments(
    referral_id: str, caller: CallerDep, request: Request
) -> list[AttachmentPublic]:
    uow = unit_of_work(request)
    return [_public(a) for a in handlers.list_attachments(referral_id, caller, uow)]


@router.get(
    "/{attachment_id}",
    summary="Download an attachment",
    responses={
        **PROBLEMS,
        200: {"content": {t: {} for t in ALLOWED_TYPES}, "description": "The document"},
    },
)
def download_attachment(
    referral_id: str, attachment_id: str, caller: CallerDep, request: Request
) -> Response:
    uow = unit_of_work(request)
    attachment = handlers.get_attachment(referral_id, attachment_id, caller, uow)
    return download(attachment, f'"{attachment.sha256}"')


def download(attachment: Attachment, etag: str) -> Response:
    """The document's bytes as a download with its own content type (the JSON API's and the
    FHIR Binary's answer): never rendered as anything else by a browser."""
    return Response(
        attachment.content,
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{attachment.filename}"',
            "X-Content-Type-Options": "nosniff",
            "ETag": etag,
        },
    )
