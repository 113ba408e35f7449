"""The interface's own operations, for the two lifecycle steps that name where a referral goes
next and so have no place in a resource write: ``Task/{id}/$redirect`` (the assigned
organisation) and ``ServiceRequest/{id}/$reroute`` (ops). Each takes a Parameters resource
and is declared by an OperationDefinition, served read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rx_contracts import ProviderType

from ...domain import identifiers
from ...domain.errors import InvalidIdentifier
from ...domain.lifecycle import Action
from . import codes
from .outcomes import FhirProblem

DEFINITIONS_BASE = f"{codes.BASE}/OperationDefinition"

REASON, PROVIDER_TYPE, ORGANIZATION = "reason", "provider-type", "organization"
VALUE_TYPES = {REASON: "valueString", PROVIDER_TYPE: "valueCoding", ORGANIZATION: "valueIdentifier"}
"""Each parameter's one value type: the target carries its system as the resources do
(ServiceRequest.performerType's coding, Task.owner's identifier)."""
REASON_MAX = 2000


@dataclass(frozen=True)
class Operation:
    id: str
    code: str
    resource: str
    action: Action
    title: str
    description: str
    target_required: bool
    returns: str


REDIRECT = Operation(
    id="Task-redirect",
    code="redirect",
    resource="Task",
    action=Action.REDIRECT,
    title="Redirect a referral to another provider type or organisation",
    description="The organisation that owns the current Task sends the referral back to "
    "routing, towards the provider type, the organisation or both that it names, saying why "
    "(with both, routing gives it to the organisation). Its Task "
    "ends rejected (businessStatus redirected); routing makes a new Task. Needs If-Match (the "
    "Task's ETag) and an Idempotency-Key.",
    target_required=True,
    returns="The Task as it now is: rejected, businessStatus redirected",
)
REROUTE = Operation(
    id="ServiceRequest-reroute",
    code="reroute",
    resource="ServiceRequest",
    action=Action.REROUTE,
    title="Re-route a referral (ops)",
    description="Ops send an unroutable or stuck referral back to routing, optionally towards "
    "a provider type, an organisation or both (routing then gives it to the organisation), "
    "saying why; the current Task, if any, ends cancelled "
    "(businessStatus rerouted). Needs If-Match (the ServiceRequest's ETag) and an "
    "Idempotency-Key.",
    target_required=False,
    returns="The ServiceRequest as it now is",
)
OPERATIONS = {op.id: op for op in (REDIRECT, REROUTE)}


def definition_url(op: Operation) -> str:
    return f"{DEFINITIONS_BASE}/{op.id}"


def operation_definition(op: Operation) -> dict[str, Any]:
    """The OperationDefinition of ``op``: its parameters as :func:`target_and_reason` reads
    them."""
    targets = (
        "A redirect names provider-type, organization or both"
        if op.target_required
        else "A re-route may name provider-type, organization, both or neither"
    )
    both = (
        f"{targets}; with both, routing gives the referral to the organisation whatever its "
        "type (the provider type is recorded, and social-care still needs the referral's "
        "consent or sharing basis)."
    )
    return {
        "resourceType": "OperationDefinition",
        "id": op.id,
        "url": definition_url(op),
        "version": "2",  # 2: a target may be both a provider type and an organisation
        "name": op.code.capitalize(),
        "title": op.title,
        "status": "active",
        "kind": "operation",
        "date": "2026-12-04",
        "publisher": "Referral Exchange",
        "description": op.description,
        "affectsState": True,
        "code": op.code,
        "resource": [op.resource],
        "system": False,
        "type": False,
        "instance": True,
        "parameter": [
            {
                "name": REASON,
                "use": "in",
                "min": 1,
                "max": "1",
                "documentation": f"Why, in words (1 to {REASON_MAX} characters).",
                "type": "string",
            },
            {
                "name": PROVIDER_TYPE,
                "use": "in",
                "min": 0,
                "max": "1",
                "documentation": f"Route to this provider type: a Coding of {codes.PROVIDER_TYPE} "
                f"({', '.join(p.value for p in ProviderType)}). {both}",
                "type": "Coding",
            },
            {
                "name": ORGANIZATION,
                "use": "in",
                "min": 0,
                "max": "1",
                "documentation": f"Route to this organisation: an Identifier of {codes.ODS_CODE}. "
                f"{both}",
                "type": "Identifier",
            },
            {
                "name": "return",
                "use": "out",
                "min": 1,
                "max": "1",
                "documentation": op.returns,
                "type": op.resource,
            },
        ],
    }


def _named(name: str) -> str:
    return f"Parameters.parameter.where(name = '{name}')"


def target_and_reason(op: Operation, body: Any) -> dict[str, Any]:
    """The details of ``op``'s lifecycle action from its Parameters: ``reason`` (required), and
    a target, ``provider-type``, ``organization`` or both, as the JSON API's redirect and
    re-route take them (at least one for a redirect). Anything else is refused naming the
    parameter."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirProblem(400, f"${op.code} takes a Parameters resource", "Parameters")
    extra = sorted(set(body) - {"resourceType", "id", "meta", "parameter"})
    if extra:
        raise FhirProblem(
            400, f"unknown element {extra[0]!r} of Parameters", f"Parameters.{extra[0]}"
        )
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list):
        raise FhirProblem(400, "parameter is a list", "Parameters.parameter")
    values: dict[str, tuple[int, Any]] = {}
    for index, parameter in enumerate(parameters):
        at = f"Parameters.parameter[{index}]"
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or name not in VALUE_TYPES:
            raise FhirProblem(
                400,
                f"unknown parameter {name!r} of ${op.code}; it takes {', '.join(VALUE_TYPES)}",
                f"{at}.name",
            )
        assert isinstance(parameter, dict)
        if name in values:
            raise FhirProblem(400, f"{name} is given more than once", at)
        wanted = VALUE_TYPES[name]
        others = sorted(set(parameter) - {"name", wanted})
        if wanted not in parameter or others:
            raise FhirProblem(
                400,
                f"{name} takes one {wanted}" + (f", not {', '.join(others)}" if others else ""),
                f"{at}.{others[0] if others else wanted}",
            )
        values[name] = (index, parameter[wanted])
    if REASON not in values:
        raise FhirProblem(
            400, f"${op.code} needs the parameter reason (valueString)", _named(REASON)
        )
    reason_at, reason = values[REASON]
    if not isinstance(reason, str) or not reason.strip() or len(reason) > REASON_MAX:
        raise FhirProblem(
            400,
            f"reason is a valueString of 1 to {REASON_MAX} characters",
            f"Parameters.parameter[{reason_at}].valueString",
        )
    if op.target_required and PROVIDER_TYPE not in values and ORGANIZATION not in values:
        raise FhirProblem(
            400,
            f"${op.code} needs a target: the parameter provider-type or organization",
            _named(PROVIDER_TYPE),
        )
    details: dict[str, Any] = {"target_provider_type": None, "target_org": None, "text": reason}
    if PROVIDER_TYPE in values:
        details["target_provider_type"] = _provider_type(*values[PROVIDER_TYPE])
    if ORGANIZATION in values:
        details["target_org"] = _organisation(*values[ORGANIZATION])
    return details


def _provider_type(index: int, coding: Any) -> ProviderType:
    at = f"Parameters.parameter[{index}].valueCoding"
    known = ", ".join(p.value for p in ProviderType)
    if (
        not isinstance(coding, dict)
        or coding.get("system") != codes.PROVIDER_TYPE
        or set(coding) - {"system", "code", "display"}
    ):
        raise FhirProblem(400, f"provider-type is a Coding of {codes.PROVIDER_TYPE} ({known})", at)
    code = coding.get("code")
    if not isinstance(code, str) or code not in {p.value for p in ProviderType}:
        raise FhirProblem(422, f"unknown provider type {code!r}; known: {known}", at)
    return ProviderType(code)


def _organisation(index: int, identifier: Any) -> str:
    at = f"Parameters.parameter[{index}].valueIdentifier"
    if (
        not isinstance(identifier, dict)
        or identifier.get("system") != codes.ODS_CODE
        or not isinstance(identifier.get("value"), str)
        or set(identifier) - {"system", "value"}
    ):
        raise FhirProblem(
            400, f"organization is an Identifier of {codes.ODS_CODE} (system, value)", at
        )
    try:
        return identifiers.ods_code(identifier["value"], "target_org")
    except InvalidIdentifier as exc:
        raise FhirProblem(422, f"{identifier['value']!r}: {exc}", f"{at}.value") from None
