"""The Task's owner moves it on: PATCH with a JSON Patch (RFC 6902) or PUT of the whole Task,
each with If-Match and an Idempotency-Key. Only ``status`` and, where the step needs them,
``statusReason`` (reject) and ``output`` (complete) may change; the step is the lifecycle
action of the JSON API, through the same handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpatch
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...adapters.idempotency import StoredResponse
from ...domain import assignments
from ...domain.caller import Caller
from ...domain.errors import IllegalTransition
from ...domain.model import Referral
from ...service_layer import handlers, versions
from ...service_layer.unit_of_work import UnitOfWork
from . import commands, inbound, resources
from .deps import (
    CallerDep,
    IdempotencyKeyHeader,
    IfMatchHeader,
    ParseFailed,
    if_match_version,
    parse,
    read_json,
)
from .outcomes import FhirProblem
from .writes import idempotent, require_key

router = APIRouter()

CHANGEABLE = ("status", "statusReason", "output")
"""What the owner may change on a Task; the rest follows from the step."""
DERIVED = frozenset({"meta", "businessStatus", "lastModified", "text"})
"""Set by the server: what a PUT sends for them is not compared."""

Change = Callable[[dict[str, Any]], dict[str, Any]]


@router.patch("/Task/{resource_id}", name="patch Task")
async def patch_task(
    resource_id: str,
    request: Request,
    caller: CallerDep,
    if_match: IfMatchHeader = None,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """JSON Patch of ``/status`` and, where needed, ``/statusReason`` or ``/output``."""
    version = if_match_version(if_match, required=True)
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/json-patch+json":
        raise FhirProblem(
            415, "PATCH takes a JSON Patch (application/json-patch+json)", "Content-Type"
        )
    operations = await read_json(request)
    change: Change = lambda current: _apply(current, operations)  # noqa: E731
    return await run_in_threadpool(
        _act, resource_id, request, caller, version, require_key(key), operations, change
    )


@router.put("/Task/{resource_id}", name="update Task")
async def update_task(
    resource_id: str,
    request: Request,
    caller: CallerDep,
    if_match: IfMatchHeader = None,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """The whole Task as read, with a new ``status`` (and ``statusReason`` or ``output``)."""
    version = if_match_version(if_match, required=True)
    sent = await read_json(request)
    if not isinstance(sent, dict) or sent.get("id") != resource_id:
        raise FhirProblem(400, "the Task's id must be the id in the URL", "Task.id")
    change: Change = lambda current: _replace(current, sent)  # noqa: E731
    return await run_in_threadpool(
        _act, resource_id, request, caller, version, require_key(key), sent, change
    )


def _act(
    task_id: str,
    request: Request,
    caller: Caller,
    version: int | None,
    key: str,
    body: Any,
    change: Change,
) -> JSONResponse:
    def execute(uow: UnitOfWork) -> tuple[versions.AssignmentVersion, Referral]:
        before = open_task(task_id, caller, uow)
        task = parse(inbound.Task, change(resources.task(before)), "Task")
        action, details = commands.task_action(before.state.status.value, task)
        referral = handlers.transition(
            before.referral.id, action, caller, version or 0, uow, **details
        )
        return before, referral

    def present(done: tuple[versions.AssignmentVersion, Referral]) -> StoredResponse:
        return task_answer(*done)

    try:
        return idempotent(request, caller, key, body, version, execute, present)
    except ParseFailed as failed:
        return failed.response()


def open_task(task_id: str, caller: Caller, uow: UnitOfWork) -> versions.AssignmentVersion:
    """The Task as it is now, for its owner to act on (a change or ``$redirect``); 409 when it
    has ended. Called inside the write's transaction, after a replayed key is answered: once
    rejected or redirected, the Task is no longer its former owner's to see, and a retry must
    still get the first answer."""
    before = versions.current_assignment(task_id, caller, uow)
    if not before.state.open:
        raise IllegalTransition(
            f"Task {task_id} has ended ({before.state.status.value}); act on the current Task",
            [],
        )
    return before


def _apply(task: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise FhirProblem(400, "a JSON Patch is a list of operations")
    for index, op in enumerate(operations):
        path = op.get("path", "") if isinstance(op, dict) else ""
        if path.strip("/").split("/")[0] not in CHANGEABLE:
            raise FhirProblem(
                422,
                f"operation {index}: only {', '.join(CHANGEABLE)} of a Task may be patched",
                f"Task{path.replace('/', '.')}" if path else None,
            )
    try:
        result: dict[str, Any] = jsonpatch.apply_patch(task, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise FhirProblem(422, f"the JSON Patch does not apply: {exc}") from exc
    return result


def _replace(current: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    for name in sorted(set(current) | set(sent)):
        if name in CHANGEABLE or name in DERIVED:
            continue
        if current.get(name) != sent.get(name):
            raise FhirProblem(
                422,
                f"{name} is not the owner's to change; only {', '.join(CHANGEABLE)} may differ",
                f"Task.{name}",
            )
    return sent


def task_answer(before: versions.AssignmentVersion, referral: Referral) -> StoredResponse:
    """The Task after the action, built from the referral's new steps (called while the unit
    of work commits, before the assignment rows are written)."""
    state: assignments.AssignmentState | None = before.state
    updated_at = before.updated_at
    for step in referral.pending:
        state = assignments.after(step, state)
        updated_at = step.at
    assert state is not None
    after = versions.AssignmentVersion(
        id=before.id,
        organisation=before.organisation,
        provider_type=before.provider_type,
        opened_at=before.opened_at,
        state=state,
        version=referral.version,
        updated_at=updated_at,
        referral=referral,
    )
    headers = {"ETag": resources.etag(referral.version)}
    return StoredResponse(200, resources.task(after), headers)
