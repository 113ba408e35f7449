"""A referral's attachments as FHIR: each one a DocumentReference (what it is) and a Binary (its
bytes), both with the attachment's own id, written once (version 1). The ServiceRequest names
them in ``supportingInfo``; ``content.attachment.url`` is the Binary's address.

No ``content.attachment.hash``: FHIR's is SHA-1 and the platform keeps SHA-256 only, so
giving it would mean hashing every document's bytes on every read."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime
from typing import Any

from ...domain.attachments import Attachment, AttachmentRejected
from ...domain.errors import InvalidRequest
from . import identifiers, inbound
from .outcomes import FhirProblem
from .resources import instant, organisation

Json = dict[str, Any]


def _at(attachment: Attachment) -> str:
    created: datetime = attachment.created_at
    if created.tzinfo is None:  # SQLite gives stored UTC times back without their zone
        created = created.replace(tzinfo=UTC)
    return instant(created)


def document_reference(attachment: Attachment, binary_url: str) -> Json:
    """``attachment`` described; ``binary_url`` is the absolute address of its Binary."""
    rid, at = attachment.referral_id, _at(attachment)
    resource: Json = {
        "resourceType": "DocumentReference",
        "id": attachment.id,
        "meta": {"versionId": "1", "lastUpdated": at},
    }
    if attachment.identifier is not None:
        given = attachment.identifier
        resource["masterIdentifier"] = {"system": given.system, "value": given.value}
    return resource | {
        "status": "current",
        "subject": {"reference": f"Patient/{rid}"},
        "date": at,
        "author": [organisation(attachment.uploaded_by)],
        "content": [
            {
                "attachment": {
                    "contentType": attachment.content_type,
                    "url": binary_url,
                    "size": attachment.size,
                    "title": attachment.filename,
                    "creation": at,
                }
            }
        ],
        "context": {"related": [{"reference": f"ServiceRequest/{rid}"}]},
    }


def binary(attachment: Attachment) -> Json:
    """``attachment``'s bytes as a Binary resource (for a client that asks for FHIR JSON)."""
    return {
        "resourceType": "Binary",
        "id": attachment.id,
        "meta": {"versionId": "1", "lastUpdated": _at(attachment)},
        "contentType": attachment.content_type,
        "securityContext": {"reference": f"ServiceRequest/{attachment.referral_id}"},
        "data": base64.b64encode(attachment.content).decode("ascii"),
    }


# ---- in ----------------------------------------------------------------------------------------

ATTACHMENT = "DocumentReference.content[0].attachment"
_ELEMENTS = {"Content-Type": "contentType", "filename": "title", "body": "data"}
"""The JSON API upload rules' fields as the uploaded attachment's elements; bytes that are not
what the type says are the ``data`` at fault (the type itself is one we take)."""


class Upload:
    """A DocumentReference to create, read as the JSON API's upload: the referral, the file
    name, the declared type and the decoded bytes; and the uploader's identifier for it."""

    def __init__(self, sent: inbound.DocumentReference) -> None:
        reference = sent.context.related[0].reference or ""
        if not reference.startswith("ServiceRequest/") or reference == "ServiceRequest/":
            raise InvalidRequest(
                "DocumentReference.context.related",
                "related_service_request",
                "context.related must reference the referral: ServiceRequest/{id}",
            )
        self.referral_id = reference.removeprefix("ServiceRequest/")
        if sent.subject is not None and sent.subject.reference != f"Patient/{self.referral_id}":
            raise InvalidRequest(
                "DocumentReference.subject",
                "subject",
                f"subject, if given, is the referral's patient: Patient/{self.referral_id}",
            )
        attachment = sent.content[0].attachment
        self.filename, self.content_type = attachment.title, attachment.contentType
        self.identifier = (
            identifiers.given(sent.masterIdentifier, "DocumentReference.masterIdentifier")
            if sent.masterIdentifier is not None
            else None
        )
        try:
            self.content = base64.b64decode("".join(attachment.data.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FhirProblem(400, f"data is not base64: {exc}", f"{ATTACHMENT}.data") from exc
        _check_integrity(attachment, self.content)

    def fingerprint(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with the bytes replaced by their SHA-256: what a retry must repeat."""
        sha256 = hashlib.sha256(self.content).hexdigest()
        return {**body, "content": sha256, "filename": self.filename, "type": self.content_type}


def _check_integrity(attachment: inbound.DocumentAttachment, content: bytes) -> None:
    """A sender's ``size`` and ``hash`` say what it meant to send: bytes that differ (cut
    short or altered on the way) are refused, not stored."""
    if attachment.size is not None and attachment.size != len(content):
        raise FhirProblem(
            422,
            f"size is {attachment.size} but data decodes to {len(content)} bytes",
            f"{ATTACHMENT}.size",
        )
    if attachment.hash is not None:
        try:
            sent = base64.b64decode("".join(attachment.hash.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FhirProblem(400, f"hash is not base64: {exc}", f"{ATTACHMENT}.hash") from exc
        if sent != hashlib.sha1(content, usedforsecurity=False).digest():
            raise FhirProblem(422, "hash is not the SHA-1 of the data sent", f"{ATTACHMENT}.hash")


def rejected(exc: AttachmentRejected) -> FhirProblem:
    """An upload rule broken, naming the element. A type we do not take is a broken rule of
    the resource (422), not an unsupported request body (the JSON API's 415)."""
    status = 422 if exc.status == 415 else exc.status
    field = "body" if exc.rule == "content_mismatch" else exc.field
    element = f"{ATTACHMENT}.{_ELEMENTS.get(field, 'data')}"
    return FhirProblem(status, f"{exc} (rule {exc.rule})", element)
