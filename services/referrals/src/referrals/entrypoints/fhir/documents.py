"""A referral's attachments as FHIR: each one a DocumentReference (what it is) and a Binary (its
bytes), both with the attachment's own id, written once (version 1). The ServiceRequest names
them in ``supportingInfo``; ``content.attachment.url`` is the Binary's address.

No ``content.attachment.hash``: FHIR's is SHA-1 and the platform keeps SHA-256 only, so
giving it would mean hashing every document's bytes on every read."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from ...domain.attachments import Attachment
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
    return {
        "resourceType": "DocumentReference",
        "id": attachment.id,
        "meta": {"versionId": "1", "lastUpdated": at},
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
