"""Searches answered as ``searchset`` Bundles, a page at a time (oldest change first; the
``next`` link carries a cursor). Each caller sees only what it is entitled to."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...adapters.ledger import AssignmentQuery, Cursor, ReferralQuery, Visibility
from ...domain.assignments import AssignmentStatus
from ...domain.identifiers import Identifier
from ...service_layer import versions
from . import codes, identifiers, resources
from .deps import BASE_PATH, CallerDep, Uow, fhir_response
from .outcomes import FhirProblem

router = APIRouter()

DEFAULT_COUNT, MAX_COUNT = 50, 200
COMMON = frozenset({"_lastUpdated", "_count", "_cursor", "_format"})
TASK_PARAMS = COMMON | {"owner", "requester", "status", "focus", "_include"}
SERVICE_REQUEST_PARAMS = COMMON | {"requester", "status", "identifier"}
STATUSES_OF: dict[str, tuple[str, ...]] = {
    fhir: tuple(s.value for s, mapped in codes.SERVICE_REQUEST_STATUS.items() if mapped == fhir)
    for fhir in set(codes.SERVICE_REQUEST_STATUS.values())
}
_NOBODY = Visibility("")  # replaced by the caller's in the service layer


class Params:
    """The query string, checked: unknown parameters are refused rather than ignored, so a
    caller never gets more (or other) than it asked for."""

    def __init__(self, request: Request, allowed: frozenset[str]) -> None:
        self.request = request
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise FhirProblem(
                400,
                f"unsupported search parameter {unknown[0]}; supported: {', '.join(sorted(allowed))}",
                unknown[0],
            )

    def values(self, name: str) -> tuple[str, ...]:
        """Every value of ``name`` (repeated, or comma-separated: OR)."""
        found: list[str] = []
        for value in self.request.query_params.getlist(name):
            found += [v for v in value.split(",") if v]
        return tuple(found)

    def tokens(self, name: str, system: str) -> tuple[str, ...]:
        """Token values, as ``code`` or ``system|code`` of the one system the parameter has."""
        found = []
        for value in self.values(name):
            given, _, code = value.rpartition("|")
            if given and given != system:
                raise FhirProblem(400, f"{name}: only {system} codes are searchable", name)
            found.append(code)
        return tuple(found)

    def identifier(self) -> Identifier | None:
        """The one ``identifier=system|value`` asked for, if any."""
        given = self.request.query_params.getlist("identifier")
        if not given:
            return None
        if len(given) > 1:
            raise FhirProblem(400, "identifier: one system|value", "identifier")
        return identifiers.token(given[0], "identifier")

    def count(self) -> int:
        raw = self.request.query_params.get("_count", str(DEFAULT_COUNT))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_COUNT:
            raise FhirProblem(400, f"_count is a number from 1 to {MAX_COUNT}", "_count")
        return int(raw)

    def last_updated(self) -> tuple[datetime | None, datetime | None]:
        after = before = None
        for value in self.values("_lastUpdated"):
            prefix, moment = value[:2], value[2:]
            try:
                when = datetime.fromisoformat(moment.replace("Z", "+00:00"))
            except ValueError:
                when = None
            if prefix not in ("gt", "lt") or when is None:
                raise FhirProblem(
                    400, "_lastUpdated takes gt<instant> and/or lt<instant>", "_lastUpdated"
                )
            if prefix == "gt":
                after = when
            else:
                before = when
        return after, before

    def cursor(self) -> Cursor | None:
        raw = self.request.query_params.get("_cursor")
        if raw is None:
            return None
        try:
            at, key = base64.urlsafe_b64decode(raw.encode()).decode().split("|", 1)
            return datetime.fromisoformat(at), key
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise FhirProblem(400, "_cursor: not a cursor this server issued", "_cursor") from exc

    def page_link(self, cursor: Cursor) -> str:
        token = base64.urlsafe_b64encode(f"{cursor[0].isoformat()}|{cursor[1]}".encode()).decode()
        return str(self.request.url.include_query_params(_cursor=token))


def searchset(
    request: Request, entries: list[dict[str, Any]], next_link: str | None
) -> dict[str, Any]:
    links = [{"relation": "self", "url": str(request.url)}]
    if next_link:
        links.append({"relation": "next", "url": next_link})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if entries:  # FHIR JSON has no empty arrays: an empty searchset has no entry at all
        bundle["entry"] = entries
    return bundle


def entry(request: Request, resource: dict[str, Any], mode: str = "match") -> dict[str, Any]:
    return {
        "fullUrl": full_url(request, f"{resource['resourceType']}/{resource['id']}"),
        "resource": resource,
        "search": {"mode": mode},
    }


def full_url(request: Request, relative: str) -> str:
    """The absolute URL of a resource of this FHIR base."""
    return f"{str(request.base_url).rstrip('/')}{BASE_PATH}/{relative}"


@router.get("/Task", name="search Task")
def search_tasks(request: Request, caller: CallerDep, uow: Uow) -> JSONResponse:
    params = Params(request, TASK_PARAMS)
    statuses = params.values("status")
    unknown = [s for s in statuses if s not in {a.value for a in AssignmentStatus}]
    if unknown:
        raise FhirProblem(400, f"status {unknown[0]!r} is not a Task status used here", "status")
    includes = params.values("_include")
    if any(i != "Task:focus" for i in includes):
        raise FhirProblem(400, "_include supports Task:focus only", "_include")
    after, before = params.last_updated()
    limit = params.count()
    query = AssignmentQuery(
        visibility=_NOBODY,
        owners=params.tokens("owner", codes.ODS_CODE),
        requesters=params.tokens("requester", codes.ODS_CODE),
        statuses=statuses,
        referral_ids=tuple(f.removeprefix("ServiceRequest/") for f in params.values("focus")),
        updated_after=after,
        updated_before=before,
        after=params.cursor(),
        limit=limit,
    )
    found, included = versions.search_assignments(query, caller, uow, bool(includes))
    page = found.items
    entries = [entry(request, resources.task(task)) for task in page]
    entries += [entry(request, resources.service_request(r), "include") for r in included]
    next_link = params.page_link((page[-1].updated_at, page[-1].id)) if found.more else None
    return fhir_response(searchset(request, entries, next_link))


@router.get("/ServiceRequest", name="search ServiceRequest")
def search_service_requests(request: Request, caller: CallerDep, uow: Uow) -> JSONResponse:
    params = Params(request, SERVICE_REQUEST_PARAMS)
    statuses: list[str] = []
    for status in params.values("status"):
        if status not in STATUSES_OF:
            raise FhirProblem(400, f"status: one of {', '.join(sorted(STATUSES_OF))}", "status")
        statuses += STATUSES_OF[status]
    after, before = params.last_updated()
    limit = params.count()
    query = ReferralQuery(
        visibility=_NOBODY,
        requesters=params.tokens("requester", codes.ODS_CODE),
        statuses=tuple(statuses),
        identifier=params.identifier(),
        updated_after=after,
        updated_before=before,
        after=params.cursor(),
        limit=limit,
    )
    found = versions.search_referrals(query, caller, uow)
    page = found.items
    entries = [entry(request, resources.service_request(r)) for r in page]
    last = (page[-1].updated_at, page[-1].referral.id) if page else None
    next_link = params.page_link(last) if found.more and last else None
    return fhir_response(searchset(request, entries, next_link))
