"""Versioned rule sets per locality, and SLA policies: read by ops and admin, changed by
admin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from rx_contracts import Priority, ServiceType

from ...adapters.tables import RuleSetRow, SlaPolicyRow
from ...domain.errors import FieldError, InvalidInput
from ...service_layer import admin
from .deps import Admin, OpsOrAdmin, Uow
from .schemas import PolicyIn, PolicyPublic, RuleSetCreate, RuleSetPublic

router = APIRouter()
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]
NO_LOCALITY: dict[int | str, dict[str, Any]] = {404: {"description": "No such locality"}}
NO_VERSION: dict[int | str, dict[str, Any]] = {
    404: {"description": "The locality has no rule set of that version"}
}


@router.get("/rule-sets", response_model=list[RuleSetPublic], tags=["rules"], responses=NO_LOCALITY)
def list_rule_sets(uow: Uow, _caller: OpsOrAdmin, locality: str | None = None) -> list[RuleSetRow]:
    """Every version of every locality's rules (or one locality's), oldest first."""
    return admin.rule_sets(uow, locality)


@router.get(
    "/rule-sets/{locality}/{version}",
    response_model=RuleSetPublic,
    tags=["rules"],
    responses=NO_VERSION,
)
def get_rule_set(locality: str, version: Version, uow: Uow, _caller: OpsOrAdmin) -> RuleSetRow:
    return admin.get_rule_set(locality, version, uow)


@router.post(
    "/rule-sets/{locality}",
    response_model=RuleSetPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["rules"],
    responses=NO_LOCALITY,
)
def create_rule_set(locality: str, body: RuleSetCreate, uow: Uow, caller: Admin) -> RuleSetRow:
    """Upload the next version of a locality's rules (admin). Every rule is checked: known
    service types, priorities, cohorts and weekdays, HH:MM times, and candidates that exist
    and serve the locality. The new version is inactive until activated."""
    return admin.create_rule_set(
        locality, body.rules_json(), caller.organisation, uow, body.description, by=caller.actor
    )


@router.post(
    "/rule-sets/{locality}/{version}/activate",
    response_model=RuleSetPublic,
    tags=["rules"],
    responses=NO_VERSION,
)
def activate_rule_set(locality: str, version: Version, uow: Uow, caller: Admin) -> RuleSetRow:
    """Make this version the locality's live rules (admin); routing uses it from its next
    decision. 404 for a version that does not exist."""
    return admin.activate_rule_set(locality, version, uow, by=caller.actor)


@router.get("/sla-policies", response_model=list[PolicyPublic], tags=["sla"])
def list_policies(uow: Uow, _caller: OpsOrAdmin) -> list[SlaPolicyRow]:
    return admin.policies(uow)


@router.put("/sla-policies/{service_type}/{priority}", response_model=PolicyPublic, tags=["sla"])
def put_policy(
    service_type: ServiceType, priority: str, body: PolicyIn, uow: Uow, caller: Admin
) -> SlaPolicyRow:
    """Create or replace the policy of a service type and priority (``*``: its priorities
    without a policy of their own). New clocks use it; running clocks keep their deadlines."""
    if priority != "*" and priority not in {p.value for p in Priority}:
        raise InvalidInput(
            [
                FieldError(
                    "priority",
                    "enum",
                    f"{priority!r} is not '*' or one of {', '.join(p.value for p in Priority)}",
                )
            ]
        )
    return admin.put_policy(
        admin.PolicyData(
            service_type=service_type,
            priority=None if priority == "*" else Priority(priority),
            accept_within_seconds=body.accept_within_seconds,
            respond_within_seconds=body.respond_within_seconds,
            warn_at_fraction=body.warn_at_fraction,
            auto_reroute=body.auto_reroute,
        ),
        uow,
        caller.actor,
    )
