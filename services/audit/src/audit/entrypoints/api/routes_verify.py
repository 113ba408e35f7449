"""Verifying the whole chain on request."""

from __future__ import annotations

from fastapi import APIRouter

from ...service_layer import handlers
from .deps import CallerDep, ContainerDep, Uow
from .schemas import VerificationPublic

router = APIRouter(tags=["audit"])


@router.get("/audit/verify", response_model=VerificationPublic)
def verify(_caller: CallerDep, uow: Uow, container: ContainerDep) -> VerificationPublic:
    """Recompute the whole chain, compare it with the checkpoints published to Kafka, and
    report the first entry that does not fit."""
    result = handlers.verify_chain(container.checkpoints, uow)
    return VerificationPublic.model_validate(result, from_attributes=True)
