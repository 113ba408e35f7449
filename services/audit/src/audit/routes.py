"""Audit routes for operations staff: entries, a referral's timeline, chain verification."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Query
from rx_web.params import IsoDateTime
from rx_web.problems import Problem, invalid_field

from .checkpoints import checkpoint_reader
from .deps import Db, Filter, OpsCaller, Services
from .queries import entry_dict, find_entries, timeline
from .schemas import EntryPage, EntryPublic, FiguresPublic, TimelineStep, VerificationPublic
from .verification import verify_database

router = APIRouter(tags=["audit"])


@router.get("/audit/entries", response_model=EntryPage)
def entries(
    _caller: OpsCaller,
    db: Db,
    where: Filter,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EntryPage:
    """Entries in chain order, filtered by referral, organisation, type and time."""
    after = _decode_cursor(cursor) if cursor else 0
    rows = find_entries(db, where, after, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return EntryPage(
        items=[EntryPublic.model_validate(entry_dict(r)) for r in page],
        next_cursor=_encode_cursor(page[-1].sequence) if more else None,
    )


@router.get(
    "/audit/referrals/{referral_id}/timeline",
    response_model=list[TimelineStep],
    responses={404: {"description": "No audit entries for that referral"}},
)
def referral_timeline(referral_id: str, _caller: OpsCaller, db: Db) -> list[TimelineStep]:
    """A referral's journey across organisations: every event in the order it happened, with
    who acted and the time since submission."""
    steps = timeline(db, referral_id)
    if not steps:
        raise Problem(404, "Referral not found", f"no audit entries for referral {referral_id}")
    return [TimelineStep.model_validate(s) for s in steps]


@router.get("/audit/verify", response_model=VerificationPublic)
def verify(_caller: OpsCaller, services: Services) -> VerificationPublic:
    """Recompute the whole chain, compare it with the checkpoints published to Kafka, and
    report the first entry that does not fit."""
    settings = services.settings
    result = verify_database(
        services.engine,
        checkpoint_reader(settings),
    )
    return VerificationPublic.model_validate(result, from_attributes=True)


@router.get("/audit/figures", response_model=FiguresPublic, response_model_by_alias=True)
def figures(
    _caller: OpsCaller,
    services: Services,
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
    return FiguresPublic.model_validate(services.figures.figures(services.engine, since, until))


def _encode_cursor(sequence: int) -> str:
    return base64.urlsafe_b64encode(f"after:{sequence}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "after" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise invalid_field("cursor", "cursor_format", "not a cursor this service issued")
