"""Log records as JSON lines carrying the ids an operator follows a referral by.

Every line has ``time``, ``level``, ``service``, ``role``, ``logger`` and ``message``, and when
known: ``correlation_id``, ``trace_id``, ``referral_id`` and ``event_id``. The ids come from
the context the record was logged in: the event a consumer is applying (:func:`bind`), the
HTTP request being answered (:class:`RequestContext`), the current trace span."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from .tracing import current_trace_id

_FIELDS: ContextVar[Mapping[str, str | None] | None] = ContextVar("rx_log_fields", default=None)
_REQUEST: ContextVar[dict[str, Any] | None] = ContextVar("rx_log_request", default=None)
IDS = ("correlation_id", "trace_id", "referral_id", "event_id")


def bind(**fields: str | None) -> Token[Mapping[str, str | None] | None]:
    """Make ``fields`` (ids from :data:`IDS`) part of every record logged in this context
    until :func:`unbind` is called with the returned token."""
    return _FIELDS.set(fields)


def unbind(token: Token[Mapping[str, str | None] | None]) -> None:
    _FIELDS.reset(token)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``)."""
    if traceparent and len(traceparent) >= 35:
        return traceparent[3:35]
    return None


class RequestContext:
    """Pure ASGI middleware: remembers the request being answered, so records logged while
    answering it carry its correlation id (``X-Correlation-Id``) and, once routed, its
    ``referral_id`` path parameter. Costs one context variable set per request; the ids are
    looked up only when a record is written."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = enter_request(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            leave_request(token)


def enter_request(scope: dict[str, Any]) -> Token[dict[str, Any] | None]:
    """Records logged from now on (in this context) carry the ids of the request ``scope``;
    until :func:`leave_request` with the returned token (what :class:`RequestContext` does)."""
    return _REQUEST.set(scope)


def leave_request(token: Token[dict[str, Any] | None]) -> None:
    _REQUEST.reset(token)


def _request_ids(scope: dict[str, Any]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        if name == b"x-correlation-id":
            ids["correlation_id"] = value.decode("latin-1")[:64]
        elif name == b"traceparent":
            found = trace_id_of(value.decode("latin-1"))
            if found:
                ids["trace_id"] = found
    referral = (scope.get("path_params") or {}).get("referral_id")
    if referral:
        ids["referral_id"] = str(referral)
    return ids


class JsonFormatter(logging.Formatter):
    """One JSON object per record. Put it after :class:`rx_web.redaction.RedactingFilter`,
    which scrubs the message and traceback it writes."""

    def __init__(self, service: str, role: str) -> None:
        super().__init__()
        self.service, self.role = service, role

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "role": self.role,
            "logger": record.name,
            "message": record.getMessage(),
        }
        scope = _REQUEST.get()
        if scope is not None:
            entry.update(_request_ids(scope))
        fields = _FIELDS.get()
        if fields:
            entry.update((k, v) for k, v in fields.items() if v)
        trace_id = current_trace_id()
        if trace_id is not None:
            entry["trace_id"] = trace_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)
