"""Evaluation figures from the recorded events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from rx_web.params import IsoDateTime

from ...domain.figures import Cohort, Selection
from .deps import CallerDep, ContainerDep, OrganisationParam, Uow
from .schemas import FiguresPublic

router = APIRouter(tags=["audit"])

LOCALITY = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


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
    organisation: OrganisationParam = None,
    locality: Annotated[
        str | None,
        Query(
            description="Referrals of patients in this locality (as their newest routing "
            "named it; `known.localities` lists them).",
            pattern=LOCALITY,
        ),
    ] = None,
    cohort: Annotated[
        Cohort | None,
        Query(description="Referrals in this cohort (`none`: in none of them)."),
    ] = None,
) -> FiguresPublic:
    """Evaluation figures from the recorded events: time to acceptance, the rapid response
    2-hour standard, rejections by reason and by organisation, question turnaround, failures
    and cancellations by organisation and reason, the outcome mix (overall and per service
    type), outcomes by cohort and locality, flows between provider types and the daily trend,
    for the referrals submitted in [since, until) — of one organisation (those it sent or
    holds or held), one locality or one cohort, if asked."""
    selection = Selection(since, until, organisation, locality, cohort)
    return FiguresPublic.model_validate(container.figures.figures(uow, selection))
