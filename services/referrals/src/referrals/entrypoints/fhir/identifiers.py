"""A sender's own identifier for what it sends (ServiceRequest.identifier,
DocumentReference.masterIdentifier): read from the resource, searched by
(``identifier=system|value``), and a create made conditional on it (``If-None-Exist``), the
same rules for each."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from ...domain.errors import InvalidRequest
from ...domain.identifiers import Identifier
from . import inbound
from .outcomes import FhirProblem

IDENTIFIER_MAX = 200
"""Longest system or value of a sender's identifier (the columns' size)."""

CONDITIONS = "identifier=system|value"
"""The one criterion a conditional create takes."""


def given(identifier: inbound.Identifier, where: str) -> Identifier:
    """The identifier a resource carries: a system (without ``|``, which separates it from the
    value in a search) and a value, nothing else (nothing else is kept)."""
    if identifier.extension or identifier.assigner is not None:
        raise InvalidRequest(
            where, "identifier_parts", "an identifier here is a system and a value"
        )
    system, value = identifier.system or "", identifier.value or ""
    if not system or not value or "|" in system:
        raise InvalidRequest(
            where, "identifier_parts", "an identifier needs a system (without '|') and a value"
        )
    if len(system) > IDENTIFIER_MAX or len(value) > IDENTIFIER_MAX:
        raise InvalidRequest(
            where, "identifier_length", f"system and value: at most {IDENTIFIER_MAX} characters"
        )
    return Identifier(system, value)


def token(raw: str, expression: str) -> Identifier:
    """``system|value`` as an identifier: both are needed, the value taken as it is (a ``|`` or
    ``,`` in it included)."""
    system, bar, value = raw.partition("|")
    if not bar or not system or not value:
        raise FhirProblem(400, "identifier: system|value (both, as they were given)", expression)
    return Identifier(system, value)


def condition(if_none_exist: str | None, resource: str) -> Identifier | None:
    """The identifier an If-None-Exist names: a ``resource``'s conditional create is by its
    identifier alone (other criteria are a 400)."""
    if if_none_exist is None:
        return None
    criteria = parse_qsl(if_none_exist, keep_blank_values=True)
    if len(criteria) != 1 or criteria[0][0] != "identifier":
        raise FhirProblem(
            400,
            f"If-None-Exist: a {resource} is created conditionally by {CONDITIONS} only",
            "If-None-Exist",
        )
    return token(criteria[0][1], "If-None-Exist")


def check_condition(wanted: Identifier | None, own: Identifier | None, element: str) -> None:
    """A condition names the identifier the resource itself carries (``element``): any other
    could never match what this create stores."""
    if wanted is not None and own != wanted:
        raise FhirProblem(
            400, f"If-None-Exist: {CONDITIONS} of the resource's own {element}", "If-None-Exist"
        )


def several(found: int, what: str) -> FhirProblem:
    """The 412 of a conditional create that matches more than one."""
    return FhirProblem(
        412,
        f"If-None-Exist: {found} or more of {what} have that identifier; nothing was stored",
        "If-None-Exist",
    )


def conditioned(body: Any, if_none_exist: str | None) -> Any:
    """What an Idempotency-Key stands for: the condition is part of the request a retry must
    repeat to be answered as the first."""
    return body if if_none_exist is None else {"resource": body, "If-None-Exist": if_none_exist}
