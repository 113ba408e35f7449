"""Worklists: referrals assigned to the person's organisation, or sent by it, soonest due
first; filters; the table refreshes itself (htmx polling) so new offers appear unasked."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from rx_contracts import Priority, ReferralStatus, ServiceType

from ..views import STATUS_LABELS, words
from .web import ApiDep, SessionDep, container, page

router = APIRouter(include_in_schema=False)

VIEWS = {"assigned": "Assigned to us", "sent": "Sent by us"}
FILTERS: dict[str, list[tuple[str, str]]] = {
    "status": [(s.value, STATUS_LABELS[s.value][0]) for s in ReferralStatus],
    "priority": [(p.value, words(p.value)) for p in Priority],
    "service_type": [(t.value, words(t.value)) for t in ServiceType],
}


Filter = Annotated[str, Query()]


def _query(
    view: Filter = "assigned",
    status: Filter = "",
    priority: Filter = "",
    service_type: Filter = "",
) -> dict[str, str]:
    """The worklist's own query (what the page links and polls with): unknown views and
    filter values are dropped."""
    chosen = {"status": status, "priority": priority, "service_type": service_type}
    return {
        "view": view if view in VIEWS else "assigned",
        **{k: v for k, v in chosen.items() if v in dict(FILTERS[k])},
    }


WorklistQuery = Annotated[dict[str, str], Depends(_query)]


async def _table(request: Request, api: ApiDep, query: dict[str, str]) -> dict[str, Any]:
    """What the page and its polled table both show."""
    params = [(k, v) for k, v in query.items()] + [("limit", "100")]
    items: list[dict[str, Any]] = (await api.worklist(params))["items"]
    return {
        "items": items,
        "query": query,
        "poll_seconds": container(request).settings.worklist_poll_seconds,
    }


@router.get("/worklist")
async def worklist(
    request: Request, session: SessionDep, api: ApiDep, query: WorklistQuery
) -> Response:
    return page(
        request,
        "worklist.html",
        session,
        **await _table(request, api, query),
        views=VIEWS,
        filters=FILTERS,
    )


@router.get("/worklist/rows")
async def worklist_rows(
    request: Request, session: SessionDep, api: ApiDep, query: WorklistQuery
) -> Response:
    """The table alone, for the page's polling."""
    return page(request, "_worklist_table.html", session, **await _table(request, api, query))
