"""Routing decisions (ops and admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ...domain.model import Decision
from ...service_layer import handlers
from .deps import OpsOrAdmin, Uow
from .schemas import DecisionPublic

router = APIRouter(tags=["decisions"])


@router.get("/decisions", response_model=list[DecisionPublic])
def decisions(
    uow: Uow,
    _caller: OpsOrAdmin,
    referral_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Decision]:
    """Routing decisions, newest first, each naming the rule and rule-set version that chose
    the organisation; filter by referral."""
    return handlers.decisions(referral_id, limit, uow)
