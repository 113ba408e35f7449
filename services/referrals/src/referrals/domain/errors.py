"""Domain errors. One base; the API maps each to a problem+json status."""

from __future__ import annotations


class ReferralError(Exception):
    """Base of every error the referrals domain raises."""

    status = 400
    title = "Referral error"

    def extra(self) -> dict[str, object]:
        """Problem fields beyond title/detail."""
        return {}


class InvalidIdentifier(ReferralError):
    """An NHS number, ODS code or postcode breaks its rule."""

    status = 422
    title = "Invalid identifier"

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.rule = field, rule

    def extra(self) -> dict[str, object]:
        return {"errors": [{"field": self.field, "rule": self.rule, "message": str(self)}]}


class InvalidRequest(InvalidIdentifier):
    """A field breaks a rule that depends on other fields (e.g. text required for 'other')."""

    title = "Invalid request"


class ReferralNotFound(ReferralError):
    """No such referral, or the caller may not see it: both look the same from outside."""

    status = 404
    title = "Referral not found"


class _ActionError(ReferralError):
    def __init__(self, message: str, allowed_actions: list[str]) -> None:
        super().__init__(message)
        self.allowed_actions = allowed_actions

    def extra(self) -> dict[str, object]:
        return {"allowed_actions": self.allowed_actions}


class NotPermitted(_ActionError):
    """The caller can see the referral but its organisation or role may not do this."""

    status = 403
    title = "Not permitted"


class IllegalTransition(_ActionError):
    """The action is not possible from the referral's current status."""

    status = 409
    title = "Transition not allowed"


class StaleVersion(ReferralError):
    """If-Match named a version that is no longer current: re-read, then decide again."""

    status = 412
    title = "Precondition failed"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"If-Match names version {expected}; the referral is at version {current}")
        self.current = current

    def extra(self) -> dict[str, object]:
        return {"current_version": self.current}
