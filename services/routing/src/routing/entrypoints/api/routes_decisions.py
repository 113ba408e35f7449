"""Routing decisions (ops and admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ...adapters import repository
from ...adapters.tables import DecisionRow
from .deps import OpsOrAdmin, SessionDep
from .schemas import DecisionPublic

router = APIRouter(tags=["decisions"])


@router.get("/decisions", response_model=list[DecisionPublic])
def decisions(
    session: SessionDep,
    _caller: OpsOrAdmin,
    referral_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DecisionRow]:
    """Routing decisions, newest first, each naming the rule and rule-set version that chose
    the organisation; filter by referral."""
    return repository.decisions(session, referral_id, limit)
