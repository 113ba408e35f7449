"""Evaluation figures from the recorded events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from rx_web.params import IsoDateTime

from .deps import CallerDep, ContainerDep, Uow
from .schemas import FiguresPublic

router = APIRouter(tags=["audit"])


@router.get("/audit/figures", response_model=FiguresPublic, response_model_by_alias=True)
def figures(
    _caller: CallerDep,
    uow: Uow,
    container: ContainerDep,
    since: Annotated[
        IsoDateTime | None, Query(description="Referrals submitted at or after this time.")
    ] = None,
    until: Annotated[IsoDateTime | None, Query(description="Referrals submitted before this.")] = (
        None
    ),
) -> FiguresPublic:
    """Evaluation figures from the recorded events: time to acceptance, the rapid response
    2-hour standard, rejections by reason, outcomes by cohort and locality, flows between
    provider types and the daily trend, for the referrals submitted in [since, until)."""
    return FiguresPublic.model_validate(container.figures.figures(uow, since, until))
