"""Attachment rules: what may be attached, how big, and that the bytes are what they claim."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from .errors import ReferralError
from .identifiers import Identifier

MAX_BYTES = 5 * 1024 * 1024
"""5 MB per attachment."""

_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "text/plain": (),  # no signature: checked as UTF-8 text instead
}
ALLOWED_TYPES = tuple(_SIGNATURES)
FILENAME = re.compile(r"^[\w][\w .()-]{0,199}$")
"""Letters, digits and _ first, then those, spaces and . ( ) -; at most 200 in all."""


@dataclass(frozen=True)
class Attachment:
    """A document kept with a referral."""

    id: str
    referral_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    content: bytes
    uploaded_by: str
    created_at: datetime
    identifier: Identifier | None = None
    """The uploader's own identifier for the document, if it gave one (never changes)."""


class AttachmentRejected(ReferralError):
    """The upload is not an acceptable attachment; ``status`` says which rule it broke."""

    def __init__(self, status: int, title: str, message: str, field: str, rule: str) -> None:
        super().__init__(message)
        self.status, self.title, self.field, self.rule = status, title, field, rule

    def extra(self) -> dict[str, object]:
        return {"errors": [{"field": self.field, "rule": self.rule, "message": str(self)}]}


def check(content_type: str, filename: str, content: bytes) -> str:
    """The normalised media type, if ``content`` is an allowed attachment of that type."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in _SIGNATURES:
        raise AttachmentRejected(
            415,
            "Unsupported attachment type",
            f"{media_type or 'no type'} is not accepted; send one of {', '.join(ALLOWED_TYPES)}",
            "Content-Type",
            "attachment_type",
        )
    if not FILENAME.fullmatch(filename):
        raise AttachmentRejected(
            422,
            "Invalid request",
            "filename: letters, digits, spaces and . ( ) - _ only, at most 200",
            "filename",
            "filename_format",
        )
    if not content:
        raise AttachmentRejected(422, "Invalid request", "the attachment is empty", "body", "empty")
    if len(content) > MAX_BYTES:
        raise AttachmentRejected(
            413,
            "Request too large",
            f"an attachment may be at most {MAX_BYTES} bytes",
            "body",
            "attachment_size",
        )
    if not _looks_like(media_type, content):
        raise AttachmentRejected(
            415,
            "Attachment content does not match its type",
            f"the bytes are not a {media_type} file",
            "Content-Type",
            "content_mismatch",
        )
    return media_type


def _looks_like(media_type: str, content: bytes) -> bool:
    signatures = _SIGNATURES[media_type]
    if signatures:
        return content.startswith(signatures)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\x00" not in text
