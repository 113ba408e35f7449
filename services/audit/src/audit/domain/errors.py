"""Domain errors. One base; the API maps each to a problem+json status, the consumer sends
events it cannot record to the dead-letter topic."""

from __future__ import annotations


class AuditError(Exception):
    """Base of every error the audit domain raises."""

    status = 400
    title = "Audit error"


class MalformedEvent(AuditError):
    """An event whose fields cannot be recorded faithfully (a control character, a field over
    its length): it is never appended."""

    status = 422
    title = "Malformed event"


class ReferralNotRecorded(AuditError):
    """The log holds nothing about this referral."""

    status = 404
    title = "Referral not found"


class CheckpointsUnavailable(AuditError):
    """The checkpoint topic could not be read, so truncation cannot be ruled out."""

    status = 503
    title = "Checkpoints unavailable"
