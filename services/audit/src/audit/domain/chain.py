"""The hash chain: what an entry keeps of an event, how it is hashed, and the head that each
new entry links to. Pure Python; the adapters store entries and the head.

An entry's hash is SHA-256 over the previous entry's hash and every recorded field, joined by
the ASCII unit separator (0x1f); control characters are refused at ingest, so the fields can
never be re-split differently. The payload is covered through its digest, SHA-256 of its
canonical JSON. The first entry links to a genesis hash derived from the chain id.

Times are integer microseconds since the Unix epoch (UTC): exact, ordered, the same on every
database, and hashed as they are stored."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from rx_contracts import AdminSubject, ChainCheckpointed, Envelope

from .errors import MalformedEvent

SEPARATOR = "\x1f"
NONE = "\x00"
"""Stands for a missing value in the hashed text (ingest refuses NUL in every field)."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
CHECKPOINT_TYPE = ChainCheckpointed.EVENT_TYPE
PLATFORM = "RX"
"""The actor of events no organisation made (routing decisions, clocks)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ORG_SUFFIXES = ("_org", "_by")
_DIRECTORY_ENTRY = AdminSubject.ORGANISATION.value
_LIMITS = {"event id": 64, "type": 200, "topic": 249, "referral id": 200, "actor": 64}


def genesis(chain_id: str) -> str:
    """The ``prev_hash`` of entry 1: binds the chain to its id, so a chain id cannot be swapped
    (to dodge another chain's checkpoints) without breaking the first link."""
    return hashlib.sha256(f"rx-audit-chain{SEPARATOR}{chain_id}".encode()).hexdigest()


def canonical_json(data: dict[str, Any]) -> str:
    """The one text of a payload that its digest is taken over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_digest(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


def entry_hash(
    prev_hash: str,
    sequence: int,
    event_id: str,
    topic: str,
    partition: int,
    offset: int,
    type_: str,
    referral_id: str | None,
    actor_org: str | None,
    occurred_at_us: int,
    recorded_at_us: int,
    digest: str,
) -> str:
    """SHA-256 over the previous hash and every field (``verification.check_rows`` inlines
    the same text in its hot loop; the domain tests keep the two equal)."""
    text = (
        f"{prev_hash}\x1f{sequence}\x1f{event_id}\x1f{topic}\x1f{partition}\x1f{offset}"
        f"\x1f{type_}\x1f{referral_id or NONE}\x1f{actor_org or NONE}"
        f"\x1f{occurred_at_us}\x1f{recorded_at_us}\x1f{digest}"
    )
    return hashlib.sha256(text.encode()).hexdigest()


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def organisations_of(data: dict[str, Any]) -> set[str]:
    """Organisations an event concerns: its actor, every top-level ``organisation``,
    ``*_org`` or ``*_by`` field (referrer, assignee, decliner, target, …), and the
    organisation whose directory entry an administrative change changed."""
    found = set()
    actor = data.get("actor")
    if isinstance(actor, dict) and isinstance(actor.get("organisation"), str):
        found.add(actor["organisation"])
    for key, value in data.items():
        if isinstance(value, str) and (key == "organisation" or key.endswith(_ORG_SUFFIXES)):
            found.add(value)
    if data.get("subject") == _DIRECTORY_ENTRY and isinstance(data.get("subject_id"), str):
        found.add(data["subject_id"])  # an administrator changed this organisation's entry
    return {org for org in found if 0 < len(org) <= 64 and not _CONTROL.search(org)}


class Event(NamedTuple):
    """What the chain keeps of one consumed event, checked to be recordable faithfully. (A
    named tuple: one is made per consumed event, and it is the cheapest immutable record.)"""

    id: str
    type: str
    topic: str
    partition: int
    offset: int
    referral_id: str | None
    actor_org: str
    occurred_at_us: int
    payload: str  # as it travelled, or its canonical JSON: the digest is over this text
    payload_digest: str
    organisations: tuple[str, ...]

    @classmethod
    def of(
        cls, envelope: Envelope, topic: str, partition: int, offset: int, raw: bytes | None
    ) -> Event:
        """``raw`` is the record's value (the payload as it travelled), if there is one.
        Any well-formed event is recordable, known type or not; MalformedEvent for one whose
        fields cannot be recorded faithfully."""
        data = envelope.data
        referral_id, actor = _referral_of(data), _actor_of(data)
        _check_fields(
            {
                "event id": envelope.id,
                "type": envelope.type,
                "topic": topic,
                "referral id": referral_id,
                "actor": actor,
            }
        )
        payload = _payload_text(raw) or canonical_json(data)
        return cls(
            envelope.id,
            envelope.type,
            topic,
            partition,
            offset,
            referral_id,
            actor,
            to_us(envelope.time),
            payload,
            payload_digest(payload),
            tuple(sorted(organisations_of(data))),
        )


class Entry(NamedTuple):
    """An event linked into the chain: its place, when it was recorded, and the hashes."""

    sequence: int
    event: Event
    recorded_at_us: int
    prev_hash: str
    hash: str


@dataclass(slots=True)
class Head:
    """The newest entry of a chain, which the next one links to."""

    chain_id: str
    sequence: int
    hash: str
    event_sequence: int
    """The newest entry that is not itself a checkpoint: only those make a checkpoint due,
    so checkpoints never feed themselves."""
    checkpoint_sequence: int = 0
    """The sequence the last staged checkpoint covered."""
    appended: set[str] = field(default_factory=set)
    """Event ids appended since this head was read (one event may arrive on two topics)."""

    @classmethod
    def new_chain(cls) -> Head:
        """The head of an empty chain, with a fresh random id."""
        chain_id = str(uuid.uuid4())
        return cls(chain_id, 0, genesis(chain_id), 0)

    def append(self, event: Event, recorded_at_us: int) -> Entry | None:
        """Link ``event`` as the next entry and move the head to it; None if this head has
        appended that event id already."""
        if event.id in self.appended:
            return None
        sequence = self.sequence + 1
        new_hash = entry_hash(
            self.hash,
            sequence,
            event.id,
            event.topic,
            event.partition,
            event.offset,
            event.type,
            event.referral_id,
            event.actor_org,
            event.occurred_at_us,
            recorded_at_us,
            event.payload_digest,
        )
        entry = Entry(sequence, event, recorded_at_us, self.hash, new_hash)
        if event.type != CHECKPOINT_TYPE:
            self.event_sequence = sequence
        self.sequence, self.hash = sequence, new_hash
        self.appended.add(event.id)
        return entry

    @property
    def checkpoint_due(self) -> bool:
        """Events (not checkpoints) were appended since the last checkpoint. Checkpoints
        appended to the chain (ours or another audit database's on a shared broker) do not
        count, or checkpoints would beget checkpoints forever."""
        return self.event_sequence > self.checkpoint_sequence

    def checkpoint(self, at: datetime) -> ChainCheckpointed:
        """The event that publishes this head outside the database."""
        return ChainCheckpointed(
            chain_id=self.chain_id, sequence=self.sequence, hash=self.hash, checkpointed_at=at
        )


def _actor_of(data: dict[str, Any]) -> str:
    actor = data.get("actor")
    if isinstance(actor, dict) and isinstance(actor.get("organisation"), str):
        return str(actor["organisation"])
    return PLATFORM


def _referral_of(data: dict[str, Any]) -> str | None:
    value = data.get("referral_id")
    return value if isinstance(value, str) and value else None


def _check_fields(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            continue
        if _CONTROL.search(value):
            raise MalformedEvent(f"malformed event: the {name} contains a control character")
        if len(value) > _LIMITS[name]:
            raise MalformedEvent(f"malformed event: the {name} is over {_LIMITS[name]} characters")


def _payload_text(value: bytes | None) -> str | None:
    if not value:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None  # JSON in UTF-16/32: keep the canonical UTF-8 text instead
