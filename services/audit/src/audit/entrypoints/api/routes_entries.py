"""Reading the log: entries filtered and paged, a referral's timeline."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Query
from rx_web.problems import invalid_field

from ...service_layer import handlers
from .deps import CallerDep, Filter, OrganisationParam, Uow
from .schemas import EntryPage, EntryPublic, TimelineStep

router = APIRouter(tags=["audit"])


@router.get("/audit/entries", response_model=EntryPage)
def entries(
    _caller: CallerDep,
    uow: Uow,
    where: Filter,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EntryPage:
    """Entries in chain order, filtered by referral, organisation, type and time."""
    after = _decode_cursor(cursor) if cursor else 0
    found = handlers.find_entries(where, after, limit + 1, uow)
    page, more = found[:limit], len(found) > limit
    return EntryPage(
        items=[EntryPublic.model_validate(entry) for entry in page],
        next_cursor=_encode_cursor(page[-1]["sequence"]) if more else None,
    )


@router.get(
    "/audit/referrals/{referral_id}/timeline",
    response_model=list[TimelineStep],
    responses={
        404: {
            "description": "No audit entries for that referral (involving that "
            "organisation, if one is given)"
        }
    },
)
def referral_timeline(
    referral_id: str, _caller: CallerDep, uow: Uow, organisation: OrganisationParam = None
) -> list[TimelineStep]:
    """A referral's journey across organisations: every event in the order it happened, with
    who acted and the time since submission. With ``organisation``, answered only if the
    referral involves that organisation (404 otherwise)."""
    steps = handlers.referral_timeline(referral_id, uow, organisation)
    return [TimelineStep.model_validate(s) for s in steps]


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
