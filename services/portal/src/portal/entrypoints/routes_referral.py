"""One referral: its details, attachments and history, and the actions open to this person,
each with its form. Every change goes to the API on the version the person saw."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from ..actions import ACTIONS, ActionForm, choices_for, offered
from ..adapters.referrals_api import ApiError
from .web import ApiDep, FormDep, SessionDep, page

router = APIRouter(include_in_schema=False)

DONE = {"created": "Your referral was sent.", "attached": "Your document was attached."}


async def _referral_page(
    request: Request, session: SessionDep, api: ApiDep, referral_id: str, **extra: Any
) -> Response:
    referral, history, attachments = await asyncio.gather(
        api.referral(referral_id), api.history(referral_id), api.attachments(referral_id)
    )
    return page(
        request,
        "referral.html",
        session,
        extra.pop("status", 200),
        referral=referral,
        history=history,
        attachments=attachments,
        actions=offered(referral["allowed_actions"], session.user.job_roles),
        **extra,
    )


@router.get("/referrals/{referral_id}")
async def referral(
    request: Request, session: SessionDep, api: ApiDep, referral_id: str, done: str = ""
) -> Response:
    message = ACTIONS[done].done if done in ACTIONS else DONE.get(done, "")
    return await _referral_page(request, session, api, referral_id, done=message)


@router.get("/referrals/{referral_id}/act/{action}")
async def action_form(
    request: Request, session: SessionDep, api: ApiDep, referral_id: str, action: str
) -> Response:
    """The form of an action that asks for details."""
    referral = await api.referral(referral_id)
    form = next(
        (
            f
            for f in offered(referral["allowed_actions"], session.user.job_roles)
            if f.name == action
        ),
        None,
    )
    if form is None or not form.details:
        return RedirectResponse(f"/referrals/{referral_id}", 303)
    return await _action_page(request, session, api, referral, form, {}, {})


async def _action_page(
    request: Request,
    session: SessionDep,
    api: ApiDep,
    referral: dict[str, Any],
    form: ActionForm,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    """An action's form; one that may carry a document lists the referral's attachments, and
    an answer shows the question it answers."""
    documents: list[tuple[str, str]] = []
    question: list[dict[str, Any]] = []
    if form.document:
        attachments, history = await asyncio.gather(
            api.attachments(referral["id"]), api.history(referral["id"])
        )
        documents = [(a["id"], a["filename"]) for a in attachments]
        question = [s for s in history if s["action"] == "request-info"][-1:]
    return page(
        request,
        "action.html",
        session,
        status,
        referral=referral,
        form=form,
        choices=choices_for(referral),
        values=values,
        errors=errors,
        documents=documents,
        question=question,
    )


@router.post("/referrals/{referral_id}/act/{action}")
async def act(
    request: Request,
    session: SessionDep,
    api: ApiDep,
    fields: FormDep,
    referral_id: str,
    action: str,
) -> Response:
    form = ACTIONS.get(action)
    if form is None or not form.allowed_for(session.user.job_roles):
        return page(
            request,
            "problem.html",
            session,
            403,
            error=ApiError(403, "You cannot do that", "Your role does not include this action."),
        )
    values = {k: v for k, v in fields.items() if isinstance(v, str)}
    try:
        version = int(values.get("version", ""))
    except ValueError:
        version = 0
    key = values.get("idempotency_key", "")
    try:
        if form.document and (document := _chosen_file(fields)) is not None:
            values["attachment_id"] = await _attach(api, referral_id, document, key)
        await api.act(referral_id, action, version, form.body(values), key)
    except ApiError as error:
        on_form = error.status == 422 and form.details
        if on_form or (error.document and error.status in (413, 415, 422)):
            # Shown field by field on the form, with what was typed (an uploaded document
            # is attached by now, and stays chosen).
            errors = error.field_errors() or {"": error.detail}
            if error.document:
                errors = {"document": error.detail or error.title}
            referral = await api.referral(referral_id)
            return await _action_page(
                request, session, api, referral, form, values, errors, error.status
            )
        if error.status in (409, 412, 403):
            # Someone else acted first, or the referral moved on: show it as it is now.
            return await _referral_page(
                request, session, api, referral_id, status=error.status, conflict=_conflict(error)
            )
        raise
    return RedirectResponse(f"/referrals/{referral_id}?done={action}", 303)


def _chosen_file(fields: dict[str, Any]) -> UploadFile | None:
    document = fields.get("document")
    return document if isinstance(document, UploadFile) and document.filename else None


async def _attach(api: ApiDep, referral_id: str, document: UploadFile, key: str) -> str:
    """Attach the document sent with a form; its id goes with the action. The key follows
    the form's, so posting the same form twice attaches it once."""
    try:
        attached = await api.upload(
            referral_id,
            document.filename or "document",
            document.content_type or "application/octet-stream",
            await document.read(),
            f"{key}-document" if key else "",
        )
    except ApiError as error:
        error.document = True
        raise
    return str(attached["id"])


def _conflict(error: ApiError) -> str:
    if error.status == 412:
        return "This referral changed while you were looking at it. Check it again before you act."
    return error.detail or error.title


@router.get("/referrals/{referral_id}/attachments/{attachment_id}")
async def download(
    session: SessionDep, api: ApiDep, referral_id: str, attachment_id: str
) -> Response:
    document = await api.download(referral_id, attachment_id)
    return Response(
        document.content,
        media_type=document.content_type,
        headers={"Content-Disposition": document.disposition, "X-Content-Type-Options": "nosniff"},
    )


@router.post("/referrals/{referral_id}/attachments")
async def upload(
    request: Request,
    session: SessionDep,
    api: ApiDep,
    fields: FormDep,
    referral_id: str,
) -> Response:
    document = fields.get("document")
    if not isinstance(document, UploadFile) or not document.filename:
        return await _referral_page(
            request, session, api, referral_id, status=422, upload_error="Choose a file to attach"
        )
    content = await document.read()
    try:
        await api.upload(
            referral_id,
            document.filename,
            document.content_type or "application/octet-stream",
            content,
            str(fields.get("idempotency_key", "")),
        )
    except ApiError as error:
        if error.status in (409, 413, 415, 422):
            return await _referral_page(
                request,
                session,
                api,
                referral_id,
                status=error.status,
                upload_error=error.detail or error.title,
            )
        raise
    return RedirectResponse(f"/referrals/{referral_id}?done=attached", 303)
