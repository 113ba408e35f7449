"""Communications: ask a question, answer it, add a message or an interim update (POST, with
the referral's version as If-Match and an Idempotency-Key, through the same lifecycle handler
as the JSON API's request-info, provide-info, message and report-progress), read one, and
list a referral's (search by ``based-on``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...adapters.idempotency import StoredResponse
from ...domain.caller import Caller
from ...domain.errors import ReferralNotFound
from ...domain.lifecycle import Action
from ...domain.model import HistoryEntry, Referral
from ...service_layer import handlers
from . import codes, communications, inbound
from .deps import (
    CallerDep,
    IdempotencyKeyHeader,
    IfMatchHeader,
    IfNoneExistHeader,
    ParseFailed,
    Uow,
    fhir_response,
    if_match_version,
    parse,
    read_json,
    refuse_conditional_create,
)
from .outcomes import FhirProblem
from .resources import etag
from .routes_search import Params, entry, full_url, searchset
from .writes import idempotent

router = APIRouter()

SEARCH_PARAMS = frozenset({"based-on", "category", "_format"})


def _base(request: Request) -> str:
    return str(request.base_url)


@router.post("/Communication", name="create Communication", status_code=201)
async def create_communication(
    request: Request,
    caller: CallerDep,
    if_match: IfMatchHeader = None,
    key: IdempotencyKeyHeader = None,
    if_none_exist: IfNoneExistHeader = None,
) -> JSONResponse:
    """A question (the assigned organisation), an answer (the referrer), a message (either) or
    an interim update (the assigned organisation); If-Match names the referral's version."""
    refuse_conditional_create(if_none_exist)
    version = if_match_version(if_match, required=True)
    body = await read_json(request)
    try:
        sent = parse(inbound.Communication, body, "Communication")
    except ParseFailed as failed:
        return failed.response()
    return await run_in_threadpool(_create, request, caller, version or 0, key, body, sent)


def _create(
    request: Request,
    caller: Caller,
    version: int,
    key: str | None,
    body: Any,
    sent: inbound.Communication,
) -> JSONResponse:
    referral_id = communications.referral_of(sent)
    history = handlers.history_for_change(referral_id, caller, request.app.state.container.uow())
    question = communications.last_question(history)
    action, details = communications.command(sent, referral_id, caller, question)

    def present(referral: Referral) -> StoredResponse:
        said = communications.from_step(referral_id, referral.pending[-1])
        answers = question if action is Action.PROVIDE_INFO else None
        resource = communications.communication(said, answers, _base(request))
        # Written once: no history to read, so the Location is the resource itself.
        where = full_url(request, f"Communication/{resource['id']}")
        headers = {"ETag": etag(1), "Location": where}
        return StoredResponse(201, resource, headers)

    return idempotent(
        request,
        caller,
        key,
        body,
        version,
        lambda uow: handlers.transition(referral_id, action, caller, version, uow, **details),
        present,
    )


@router.get("/Communication/{resource_id}", name="read Communication")
def read_communication(
    resource_id: str, request: Request, caller: CallerDep, uow: Uow
) -> JSONResponse:
    """One Communication of a referral the caller may see; the read is recorded."""
    referral_id, sequence = communications.parse_id(resource_id)

    def find(history: list[HistoryEntry]) -> communications.Json:
        for said, answers in communications.thread(referral_id, history):
            if said.sequence == sequence:
                return communications.communication(said, answers, _base(request))
        raise ReferralNotFound(f"no Communication {resource_id}")

    resource = handlers.read_history(referral_id, caller, uow, find)
    return fhir_response(resource, headers={"ETag": etag(1)})


@router.get("/Communication", name="search Communication")
def search_communications(request: Request, caller: CallerDep, uow: Uow) -> JSONResponse:
    """A referral's Communications, oldest first (one page: a referral has few); the read is
    recorded, whether or not any match the category."""
    params = Params(request, SEARCH_PARAMS)
    based_on = params.values("based-on")
    if len(based_on) != 1:
        raise FhirProblem(
            400, "search Communications by one referral: based-on=ServiceRequest/{id}", "based-on"
        )
    kinds = set(params.tokens("category", codes.COMMUNICATION_CATEGORY))
    unknown = kinds - set(communications.ACTIONS)
    if unknown:
        raise FhirProblem(
            400,
            f"category {sorted(unknown)[0]!r}: one of {', '.join(communications.ACTIONS)}",
            "category",
        )
    referral_id = based_on[0].removeprefix("ServiceRequest/")
    try:
        history = handlers.get_history(referral_id, caller, uow)
    except ReferralNotFound:
        history = []  # a search finds nothing of what the caller may not see
    entries = [
        entry(request, communications.communication(said, answers, _base(request)))
        for said, answers in communications.thread(referral_id, history)
        if not kinds or said.kind in kinds
    ]
    return fhir_response(searchset(request, entries, None))
