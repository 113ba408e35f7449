"""CloudEvents 1.0 envelope in Kafka binary mode.

Attributes travel as ``ce_*`` headers, the payload as the JSON record value, and the Kafka key
is the payload's key (the referral id for referral events). Tracing uses the W3C
``traceparent`` header; ``ce_correlationid`` ties together every event caused by one original
request.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .ids import new_id
from .payload import Payload
from .registry import EVENT_TYPES

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
SCHEMA_URN_PREFIX = "urn:referral-exchange:schema:"
MAX_EVENT_BYTES = 64 * 1024
"""Largest record value (the event's JSON data) the platform writes or reads. Events carry ids,
codes and organisations, never documents or free text about the patient, so the largest is
about 2 KB; anything bigger is not one of ours. Producers refuse to write one (in the
transaction that would have stored it) and consumers dead-letter it unread."""


class EnvelopeError(ValueError):
    """A Kafka record is not a valid event of ours; it can never be processed (poison)."""


class KafkaRecord(NamedTuple):
    """What goes on the wire: key, value and headers of one Kafka record."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class Envelope(BaseModel):
    """One event: CloudEvents context attributes plus its JSON data."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, description="Unique event id; consumers dedupe on it.")
    type: str = Field(
        min_length=1, description="Event type, e.g. rx.referrals.ReferralSubmitted.v1"
    )
    source: str = Field(min_length=1, description="Producing service, e.g. /services/referrals")
    time: datetime = Field(description="When the event happened (UTC).")
    specversion: str = Field(default=SPEC_VERSION, description="CloudEvents spec version.")
    subject: str = Field(
        min_length=1,
        description="What the event is about (the referral id for referral events); equals the "
        "Kafka key.",
    )
    dataschema: str = Field(description="URN of the payload's JSON Schema.")
    datacontenttype: str = Field(default=CONTENT_TYPE)
    correlationid: str = Field(min_length=1, description="Id shared by a request's events.")
    traceparent: str | None = Field(default=None, description="W3C trace context.")
    data: dict[str, Any] = Field(description="The payload as JSON.")

    def payload(self) -> Payload:
        """The data parsed into its payload model; EnvelopeError if unknown or invalid."""
        model = EVENT_TYPES.get(self.type)
        if model is None:
            raise EnvelopeError(f"unknown event type {self.type!r}")
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            raise EnvelopeError(f"invalid {self.type} payload: {exc}") from exc


def schema_urn(event_type: str) -> str:
    """The ``dataschema`` of an event type."""
    return SCHEMA_URN_PREFIX + event_type


def new_traceparent() -> str:
    """A fresh W3C traceparent (version 00, sampled)."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def wrap(
    payload: Payload,
    *,
    source: str,
    correlation_id: str | None = None,
    traceparent: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> Envelope:
    """Put a payload in an envelope; the subject (and Kafka key) is the payload's key: its
    referral id for referral events."""
    return Envelope(
        id=event_id or new_id(),
        type=payload.EVENT_TYPE,
        source=source,
        time=time or datetime.now(UTC),
        subject=payload.key,
        dataschema=schema_urn(payload.EVENT_TYPE),
        correlationid=correlation_id or str(uuid.uuid4()),
        traceparent=traceparent or new_traceparent(),
        data=payload.model_dump(mode="json"),
    )


def _refuse_unknown_version(event_type: str) -> None:
    """A known event in a version this platform does not read is poison for every consumer:
    a breaking change travels on a new ``.v<N+1>`` topic, so ``…ReferralSubmitted.v2`` on a
    ``.v1`` topic is a producer's mistake. An event name never heard of passes: the audit
    records what it cannot interpret, and consumers that must interpret it refuse it through
    :meth:`Envelope.payload`."""
    if event_type in EVENT_TYPES:
        return
    name, _, version = event_type.rpartition(".")
    known = sorted(t.rpartition(".")[2] for t in EVENT_TYPES if t.rpartition(".")[0] == name)
    if known:
        raise EnvelopeError(
            f"unknown version {version!r} of {name}: this platform reads {', '.join(known)}"
        )


_VALUE_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)
"""``json.dumps(data, separators=(",", ":"), sort_keys=True)``, without a new encoder per call
(consumers that stage events encode one per event they handle)."""


def encode(envelope: Envelope) -> KafkaRecord:
    """Binary content mode: attributes to headers, data to the value, subject to the key."""
    headers = [
        ("ce_id", envelope.id.encode()),
        ("ce_type", envelope.type.encode()),
        ("ce_source", envelope.source.encode()),
        ("ce_specversion", envelope.specversion.encode()),
        ("ce_subject", envelope.subject.encode()),
        ("ce_dataschema", envelope.dataschema.encode()),
        ("ce_correlationid", envelope.correlationid.encode()),
        ("ce_time", envelope.time.isoformat().encode()),
        ("content-type", envelope.datacontenttype.encode()),
    ]
    if envelope.traceparent:
        headers.append(("traceparent", envelope.traceparent.encode()))
    value = _VALUE_JSON.encode(envelope.data).encode()
    if len(value) > MAX_EVENT_BYTES:
        raise EnvelopeError(
            f"{envelope.type} {envelope.id} is {len(value)} bytes, over the "
            f"{MAX_EVENT_BYTES}-byte event limit"
        )
    return KafkaRecord(envelope.subject.encode(), value, headers)


def decode(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> Envelope:
    """Rebuild the envelope from a Kafka record; EnvelopeError if it is not one of ours."""
    attrs: dict[str, Any] = {}
    for name, raw in headers or []:
        try:
            text = raw.decode() if raw is not None else ""
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"header {name!r} is not UTF-8") from exc
        if name.startswith("ce_"):
            attrs[name[3:]] = text
        elif name == "content-type":
            attrs["datacontenttype"] = text
        elif name == "traceparent":
            attrs["traceparent"] = text
    if attrs.get("specversion") != SPEC_VERSION:
        raise EnvelopeError(
            f"not a CloudEvents {SPEC_VERSION} record: {attrs.get('specversion')!r}"
        )
    if len(value or b"") > MAX_EVENT_BYTES:
        raise EnvelopeError(
            f"value is {len(value or b'')} bytes, over the {MAX_EVENT_BYTES}-byte event limit"
        )
    _refuse_unknown_version(str(attrs.get("type", "")))
    if (
        key is not None
        and attrs.get("subject")
        and key.decode(errors="replace") != attrs["subject"]
    ):
        raise EnvelopeError("Kafka key does not match ce_subject")
    try:
        data = json.loads(value or b"")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EnvelopeError("value is not a JSON object")
    try:
        return Envelope.model_validate({**attrs, "data": data})
    except ValidationError as exc:
        raise EnvelopeError(f"invalid envelope: {exc}") from exc
