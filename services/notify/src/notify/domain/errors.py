"""Domain errors. One base; the API maps each to problem+json (OperationOutcome on FHIR routes)."""

from __future__ import annotations


class NotifyError(Exception):
    """Base of every error the notify domain raises."""

    status = 400
    title = "Subscription error"

    def extra(self) -> dict[str, object]:
        """Problem fields beyond title/detail."""
        return {}


class InvalidSubscription(NotifyError):
    """A field of a subscription breaks a rule: names the field and the rule."""

    status = 422
    title = "Invalid subscription"

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.rule = field, rule

    def extra(self) -> dict[str, object]:
        return {"errors": [{"field": self.field, "rule": self.rule, "message": str(self)}]}


class SubscriptionNotFound(NotifyError):
    """No such subscription, or the caller may not see it: both look the same from outside."""

    status = 404
    title = "Subscription not found"


class NotPermitted(NotifyError):
    """The caller can see the subscription but may not do this."""

    status = 403
    title = "Not permitted"


class StaleVersion(NotifyError):
    """If-Match named a version that is no longer current."""

    status = 412
    title = "Precondition failed"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"If-Match names version {expected}; the subscription is at {current}")
        self.current = current

    def extra(self) -> dict[str, object]:
        return {"current_version": self.current}
