"""Domain errors of the routing service. One base; the API turns each into problem+json."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One broken rule: where (a dotted path into the input), which rule, and in words."""

    field: str
    rule: str
    message: str


class RoutingError(Exception):
    """Base of every error the routing domain raises."""

    status = 400
    title = "Routing error"

    def extra(self) -> dict[str, object]:
        """Problem fields beyond title and detail."""
        return {}


class InvalidInput(RoutingError):
    """Input breaks one or more rules; nothing was changed."""

    status = 422
    title = "Invalid request"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors

    def extra(self) -> dict[str, object]:
        return {
            "errors": [
                {"field": e.field, "rule": e.rule, "message": e.message} for e in self.errors
            ]
        }


class NotFound(RoutingError):
    """No such organisation, locality, rule set version or policy."""

    status = 404
    title = "Not found"


class Conflict(RoutingError):
    """The thing exists already (create) or the change clashes with current state."""

    status = 409
    title = "Conflict"


class CaseNotFound(RoutingError):
    """An event about a referral routing never saw submitted."""

    status = 404
    title = "Case not found"


class IllegalTransition(RoutingError):
    """The event is not possible from the case's current status (the referral's lifecycle
    never produces it there)."""

    status = 409
    title = "Transition not allowed"


class CapacityTaken(RoutingError):
    """Another routing process took an organisation's last place of the day between this one
    reading the day's load and claiming a place: the event is applied again and routes on."""

    status = 409
    title = "Capacity taken"


class Collector:
    """Gathers every broken rule of an input, so one answer names them all."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, field: str, rule: str, message: str) -> None:
        self.errors.append(FieldError(field, rule, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise InvalidInput(self.errors)
