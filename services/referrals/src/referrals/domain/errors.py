"""Domain errors. One base; the API maps each kind to a problem+json status."""

from __future__ import annotations


class ReferralError(Exception):
    """Base of every error the referrals domain raises."""

    status = 400
    title = "Referral error"


class InvalidIdentifier(ReferralError):
    """An NHS number, ODS code or postcode breaks its rule."""

    status = 422
    title = "Invalid identifier"

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.rule = field, rule


class ReferralNotFound(ReferralError):
    status = 404
    title = "Referral not found"


class IllegalTransition(ReferralError):
    status = 409
    title = "Transition not allowed"
