"""Mapping the Subscription aggregate and the referral read model to and from their rows, and
the queries ingestion and delivery run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from rx_contracts import new_id
from rx_messaging import fastsql
from rx_messaging.buffer import write_buffer
from sqlalchemy import (
    JSON,
    Column,
    MetaData,
    Table,
    TypeDecorator,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlmodel import Session

from ..domain.referral import LifecycleEvent, ReferralView
from ..domain.subscription import Channel, Content, Filters, Status, Subscription
from ..domain.topics import Kind, Topic
from .notifications import NumberedEvent
from .tables import (
    EVENT,
    NOTIFICATION,
    PENDING,
    REFERRAL,
    SUBSCRIPTION,
    SubscriptionRow,
    utcnow,
)

_ROW_ONLY = {"lease_owner", "lease_until"}
_DOMAIN_ONLY = {"changes"}


def to_domain(row: SubscriptionRow | Mapping[str, Any]) -> Subscription:
    """The aggregate from its row (an ORM row, or a Core result's mapping)."""
    get = row.get if isinstance(row, Mapping) else lambda name: getattr(row, name)
    values: dict[str, Any] = {
        f.name: get(f.name) for f in fields(Subscription) if f.name not in _DOMAIN_ONLY
    }
    values["channel"] = Channel(values["channel"])
    values["topic"] = Topic(values["topic"])
    values["status"] = Status(values["status"])
    values["content"] = Content(values["content"])
    values["filters"] = _filters(get("filters"))
    values["headers"] = tuple(values["headers"] or ())
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = aware(value)
    return Subscription(**values)


def _filters(stored: dict[str, list[str]] | None) -> Filters:
    found = stored or {}
    return Filters(
        tuple(found.get("status", ())),
        tuple(found.get("service_type", ())),
        tuple(found.get("priority", ())),
    )


def aware(value: datetime) -> datetime:
    """SQLite (and PostgreSQL's plain timestamp) hand datetimes back without their zone; every
    one we store is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def to_row_fields(subscription: Subscription) -> dict[str, Any]:
    values = {
        f.name: getattr(subscription, f.name)
        for f in fields(Subscription)
        if f.name not in _DOMAIN_ONLY
    }
    values["channel"] = subscription.channel.value
    values["topic"] = subscription.topic.value
    values["status"] = subscription.status.value
    values["content"] = subscription.content.value
    values["filters"] = subscription.filters.as_dict()
    values["headers"] = list(subscription.headers)
    return values


class SubscriptionRepository:
    """Subscriptions to and from their rows, on Core statements (the delivery worker loads and
    saves many per second)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.seen: dict[str, Subscription] = {}
        self._loaded: dict[str, dict[str, Any]] = {}

    def add(self, subscription: Subscription) -> None:
        values = to_row_fields(subscription)
        self.session.connection().execute(SUBSCRIPTION.insert().values(**values))
        self.seen[subscription.id] = subscription
        self._loaded[subscription.id] = values

    def get(self, subscription_id: str, *, for_update: bool = False) -> Subscription | None:
        """Load one; ``for_update`` locks its row (PostgreSQL) so concurrent changes queue."""
        query = select(SUBSCRIPTION).where(SUBSCRIPTION.c.id == subscription_id)
        if for_update:
            query = query.with_for_update()
        row = self.session.connection().execute(query).mappings().first()
        if row is None:
            return None
        subscription = to_domain(dict(row))
        self.seen[subscription.id] = subscription
        self._loaded[subscription.id] = to_row_fields(subscription)
        return subscription

    def save(self, subscription: Subscription) -> None:
        """Write what changed of the aggregate's settings and delivery state. The event
        counter is left to ingestion (``ReferralRepository.number``), which may have moved it
        since this one was loaded."""
        values = to_row_fields(subscription)
        values.pop("events_since_start")
        loaded = self._loaded.get(subscription.id)
        changed = {k: v for k, v in values.items() if loaded is None or loaded[k] != v}
        if not changed:
            return
        self.session.connection().execute(
            update(SUBSCRIPTION).where(SUBSCRIPTION.c.id == subscription.id).values(**changed)
        )
        self._loaded[subscription.id] = {**values, "events_since_start": 0}

    def listing(
        self, organisation: str | None, limit: int = 100, after: str | None = None
    ) -> list[Subscription]:
        """Subscriptions of ``organisation`` (every organisation's for None), not deleted, in
        id order after ``after``."""
        query = select(SUBSCRIPTION).where(SUBSCRIPTION.c.deleted_at.is_(None))
        if organisation is not None:
            query = query.where(SUBSCRIPTION.c.organisation == organisation)
        if after is not None:
            query = query.where(SUBSCRIPTION.c.id > after)
        query = query.order_by(SUBSCRIPTION.c.id).limit(limit)
        rows = self.session.connection().execute(query).mappings()
        return [to_domain(dict(row)) for row in rows]

    def notifications(self, subscription_id: str, since: int, until: int) -> list[NumberedEvent]:
        """The subscription's numbered events ``since``..``until`` (inclusive), in order."""
        query = (
            select(
                NOTIFICATION.c.event_number,
                NOTIFICATION.c.id.label("message_id"),
                EVENT.c.event_id,
                EVENT.c.type,
                EVENT.c.kind,
                EVENT.c.referral_id,
                EVENT.c.sequence,
                EVENT.c.source,
                EVENT.c.time,
                EVENT.c.data,
                EVENT.c.state,
            )
            .join(EVENT, NOTIFICATION.c.event_id == EVENT.c.event_id)
            .where(
                NOTIFICATION.c.subscription_id == subscription_id,
                NOTIFICATION.c.event_number >= since,
                NOTIFICATION.c.event_number <= until,
            )
            .order_by(NOTIFICATION.c.event_number)
        )
        return [
            NumberedEvent(
                number=row.event_number,
                message_id=row.message_id,
                event_id=row.event_id,
                type=row.type,
                kind=row.kind,
                referral_id=row.referral_id,
                sequence=row.sequence,
                source=row.source,
                time=aware(row.time),
                data=row.data,
                state=row.state or {},
            )
            for row in self.session.connection().execute(query)
        ]


_VIEW_FIELDS = (
    "referrer_org",
    "service_type",
    "priority",
    "status",
    "assigned_org",
    "provider_type",
    "applied_sequence",
    "entries",
    "decided",
    "held",
)
"""The read model's columns besides its key (``ReferralView``'s fields)."""
_VIEW = select(*(REFERRAL.c[name] for name in _VIEW_FIELDS)).where(
    REFERRAL.c.referral_id == bindparam("referral_id")
)
_PENDING_EXISTS = (
    exists()
    .where(EVENT.c.referral_id == bindparam("referral_id"), EVENT.c.placement == PENDING)
    .label("pending")
)
_VIEW_AND_PENDING = select(
    *(REFERRAL.c[name] for name in _VIEW_FIELDS), _PENDING_EXISTS
).select_from(
    select(literal_column("1").label("one"))
    .subquery()
    .outerjoin(REFERRAL, REFERRAL.c.referral_id == bindparam("referral_id"))
)
"""The view (its columns all null if there is none yet) and whether events of the referral
wait, unplaced, from a time nobody could hear of them: one row always, one statement."""
_VIEW_INSERT = fastsql.insert_into(REFERRAL, ("referral_id", *_VIEW_FIELDS, "updated_at"))
_VIEW_UPDATE = (
    update(REFERRAL)
    .where(REFERRAL.c.referral_id == bindparam("key"))
    .values({name: bindparam(name) for name in (*_VIEW_FIELDS, "updated_at")})
)
_EVENT_FIELDS = (
    "event_id",
    "type",
    "kind",
    "referral_id",
    "source",
    "time",
    "data",
    "placement",
    "sequence",
    "state",
    "received_at",
    "applied_at",
)
"""The columns an event's row is written with."""
_PENDING_FIELDS = tuple(name for name in _EVENT_FIELDS if name not in ("state", "applied_at"))
"""Those of a pending event: it has no state after it yet and was not applied."""
_EVENT_INSERT = fastsql.insert_into(EVENT, _EVENT_FIELDS)
_EVENT_PLACED = (
    update(EVENT)
    .where(EVENT.c.event_id == bindparam("key"))
    .values({name: bindparam(name) for name in ("placement", "sequence", "state", "applied_at")})
)
_EVENT_COLUMNS = (
    EVENT.c.event_id,
    EVENT.c.type,
    EVENT.c.kind,
    EVENT.c.referral_id,
    EVENT.c.data,
    EVENT.c.time,
    EVENT.c.source,
)
_HELD = select(*_EVENT_COLUMNS).where(
    EVENT.c.referral_id == bindparam("referral_id"), EVENT.c.placement == "held"
)
_PENDING = (
    select(*_EVENT_COLUMNS)
    .where(EVENT.c.referral_id == bindparam("referral_id"), EVENT.c.placement == PENDING)
    .order_by(EVENT.c.received_at, EVENT.c.event_id)
)
_RECEIVERS = select(
    SUBSCRIPTION.c.id, SUBSCRIPTION.c.organisation, SUBSCRIPTION.c.topic, SUBSCRIPTION.c.filters
).where(SUBSCRIPTION.c.status != Status.OFF.value, SUBSCRIPTION.c.deleted_at.is_(None))


class _JSONText(TypeDecorator[Any]):
    """A JSON column's value given as JSON text already (a record's value as it came): written
    as it is, not serialised again (PostgreSQL's driver still casts it to json)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


_PENDING_ROWS = Table(
    EVENT.name,
    MetaData(),
    *(
        Column(name, _JSONText() if name == "data" else EVENT.c[name].type)
        for name in _PENDING_FIELDS
    ),
)
"""The event table as a pending event is written to it: its ``data`` the record's own JSON
text (the record's value is the event's data, CloudEvents' binary mode)."""
Receivers = dict[tuple[str, Topic], list[tuple[str, Filters]]]
"""(organisation, topic) → the ids and filters of its subscriptions that can be numbered
events."""
_NUMBER = (
    update(SUBSCRIPTION)
    .where(SUBSCRIPTION.c.id == bindparam("key"))
    .values(events_since_start=SUBSCRIPTION.c.events_since_start + 1)
    .returning(SUBSCRIPTION.c.id, SUBSCRIPTION.c.events_since_start)
)
_NOTIFICATION_INSERT = fastsql.insert_into(
    NOTIFICATION, ("subscription_id", "event_number", "id", "event_id", "created_at")
)


def _identity(event: LifecycleEvent) -> dict[str, Any]:
    """The columns of an event's row that say which event it is, however it is written."""
    return {
        "event_id": event.event_id,
        "type": event.type,
        "kind": event.kind.value,
        "referral_id": event.referral_id,
        "source": event.source,
        "time": event.time,
    }


class ReferralRepository:
    """The referral read model and the events notify holds or applied. Ingestion's hot path:
    statements built once and run on the driver's cursor (``rx_messaging.fastsql``), in the
    session's transaction; the subscriptions that can receive anything read once per
    transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.connection = session.connection()
        self._saved: dict[str, tuple[Any, ...]] = {}
        """Per referral, its view's values as last read or written in this transaction."""

    @classmethod
    def of(cls, session: Session) -> ReferralRepository:
        """The session's repository (one per transaction: a consumer's session lives for one
        poll batch)."""
        found: ReferralRepository | None = session.info.get(_REPOSITORY_KEY)
        if found is None:
            found = session.info[_REPOSITORY_KEY] = cls(session)
        return found

    def view(self, referral_id: str) -> ReferralView | None:
        rows = fastsql.fetch_rows(self.connection, _VIEW, {"referral_id": referral_id})
        return self._to_view(referral_id, rows[0] if rows else None)

    def view_and_pending(self, referral_id: str) -> tuple[ReferralView | None, bool]:
        """The view, and whether the referral has events stored unplaced (``PENDING``)."""
        rows = fastsql.fetch_rows(self.connection, _VIEW_AND_PENDING, {"referral_id": referral_id})
        values = rows[0]
        found = values[:-1] if values[0] is not None else None
        return self._to_view(referral_id, found), bool(values[-1])

    def _to_view(self, referral_id: str, row: tuple[Any, ...] | None) -> ReferralView | None:
        if row is None:
            self._saved.pop(referral_id, None)
            return None
        self._saved[referral_id] = row
        values = dict(zip(_VIEW_FIELDS, row, strict=True))
        values["entries"] = list(values["entries"])
        return ReferralView(referral_id=referral_id, **values)

    def save_view(self, view: ReferralView, new: bool = False) -> None:
        """Write the view, unless nothing in it changed since it was read or written (a clock
        event, a stale decision)."""
        current = (
            view.referrer_org,
            view.service_type,
            view.priority,
            view.status,
            view.assigned_org,
            view.provider_type,
            view.applied_sequence,
            list(view.entries),
            view.decided,
            view.held,
        )
        if not new and self._saved.get(view.referral_id) == current:
            return
        self._saved[view.referral_id] = current
        values: dict[str, Any] = dict(zip(_VIEW_FIELDS, current, strict=True))
        values["updated_at"] = utcnow()
        if new:
            fastsql.execute(
                self.connection, _VIEW_INSERT, {"referral_id": view.referral_id, **values}
            )
        else:
            fastsql.execute(self.connection, _VIEW_UPDATE, {"key": view.referral_id, **values})

    def store(
        self,
        event: LifecycleEvent,
        placement: str,
        sequence: int | None,
        state: dict[str, Any] | None,
        stored: bool = False,
        *,
        keep: bool = True,
    ) -> None:
        """Record an event as pending, held, applied or stale (``stored``: its row exists,
        pending or held, and is updated). Its payload (``data``) and the referral's state after
        it are what its notifications show, and a pending or held event is placed from its row
        later: with ``keep`` False (applied or stale, numbered for nobody) a new row keeps
        neither, only that the event came and where it was placed."""
        now = utcnow()
        applied_at = now if placement not in ("held", PENDING) else None
        if stored:
            fastsql.execute(
                self.connection,
                _EVENT_PLACED,
                {
                    "key": event.event_id,
                    "placement": placement,
                    "sequence": sequence,
                    "state": state if keep else None,
                    "applied_at": applied_at,
                },
            )
            return
        fastsql.execute(
            self.connection,
            _EVENT_INSERT,
            {
                **_identity(event),
                "data": event.data if keep else _NOT_KEPT,
                "placement": placement,
                "sequence": sequence,
                "state": state if keep else None,
                "received_at": now,
                "applied_at": applied_at,
            },
        )

    def keep_pending(self, event: LifecycleEvent, data_json: str | None = None) -> None:
        """Store an event unplaced (``PENDING``), through the transaction's write buffer: one
        insert a batch. Nothing reads it back in this transaction: it is placed only in one
        with subscriptions to number for. ``data_json``: its data as the JSON text it came in,
        stored as it is instead of serialising ``event.data`` again."""
        values = {
            **_identity(event),
            "data": event.data,
            "placement": PENDING,
            "sequence": event.sequence,
            "received_at": utcnow(),
        }
        if data_json is None:
            write_buffer(self.session).add(EVENT, values)
        else:
            values["data"] = data_json
            write_buffer(self.session).add(_PENDING_ROWS, values)

    def held(self, referral_id: str) -> list[LifecycleEvent]:
        rows = fastsql.fetch_rows(self.connection, _HELD, {"referral_id": referral_id})
        return sorted(_events(rows), key=lambda e: (e.sequence or 0, e.time))

    def pending(self, referral_id: str) -> list[LifecycleEvent]:
        """The referral's events stored unplaced, in the order they came."""
        return _events(fastsql.fetch_rows(self.connection, _PENDING, {"referral_id": referral_id}))

    def receivers(self) -> Receivers:
        """Subscriptions that can be numbered events (not off, not deleted), by organisation
        and topic, with their filters; read once per transaction."""
        cached: Receivers | None = self.session.info.get(_RECEIVERS_KEY)
        if cached is None:
            cached = {}
            for sid, organisation, topic, filters in fastsql.fetch_rows(
                self.connection, _RECEIVERS, {}
            ):
                cached.setdefault((organisation, Topic(topic)), []).append((sid, _filters(filters)))
            self.session.info[_RECEIVERS_KEY] = cached
        return cached

    def number(self, subscription_ids: list[str], event_id: str) -> list[tuple[str, int]]:
        """Give the event the next number of each subscription, in this transaction: the
        counter and the notification row are written together, so numbers have no gaps."""
        if not subscription_ids:
            return []
        # One subscription at a time, in id order: concurrent ingestion (PostgreSQL) locks
        # the counters in the same order.
        numbered: list[tuple[str, int]] = []
        for sid in sorted(set(subscription_ids)):
            raw = fastsql.execute(self.connection, _NUMBER, {"key": sid})
            numbered.extend((str(row[0]), int(row[1])) for row in raw.fetchall())
        now = utcnow()
        fastsql.execute_many(
            self.connection,
            _NOTIFICATION_INSERT,
            [
                {
                    "subscription_id": sid,
                    "event_number": number,
                    "id": new_id(),
                    "event_id": event_id,
                    "created_at": now,
                }
                for sid, number in numbered
            ],
        )
        return numbered


def _events(rows: list[tuple[Any, ...]]) -> list[LifecycleEvent]:
    return [
        LifecycleEvent(event_id, type_, Kind(kind), referral, data, aware(time), source)
        for event_id, type_, kind, referral, data, time, source in rows
    ]


_RECEIVERS_KEY = "notify.receivers"
_REPOSITORY_KEY = "notify.referrals"
_NOT_KEPT: dict[str, Any] = {}
"""An event's ``data`` when no notification will show it (the column is not null)."""


def due_condition(now: datetime) -> Any:
    """Work that is due now and not held by a live lease."""
    return and_(
        SUBSCRIPTION.c.deleted_at.is_(None),
        or_(SUBSCRIPTION.c.lease_until.is_(None), SUBSCRIPTION.c.lease_until < now),
        or_(
            and_(
                SUBSCRIPTION.c.status.in_([Status.ACTIVE.value, Status.REQUESTED.value]),
                or_(
                    SUBSCRIPTION.c.handshake_due.is_(True),
                    SUBSCRIPTION.c.events_since_start > SUBSCRIPTION.c.delivered_through,
                ),
                or_(
                    SUBSCRIPTION.c.next_attempt_at.is_(None), SUBSCRIPTION.c.next_attempt_at <= now
                ),
            ),
            and_(
                SUBSCRIPTION.c.status == Status.ACTIVE.value,
                SUBSCRIPTION.c.heartbeat_due_at <= now,
            ),
            and_(
                SUBSCRIPTION.c.end_at.is_not(None),
                SUBSCRIPTION.c.end_at <= now,
                SUBSCRIPTION.c.status != Status.OFF.value,
            ),
        ),
    )


def next_due_at(session: Session) -> datetime | None:
    """When the earliest scheduled work (a retry, a heartbeat, an end) falls due."""
    candidates = [
        session.scalar(
            select(func.min(SUBSCRIPTION.c.next_attempt_at)).where(
                SUBSCRIPTION.c.status.in_([Status.ACTIVE.value, Status.REQUESTED.value]),
                SUBSCRIPTION.c.deleted_at.is_(None),
            )
        ),
        session.scalar(
            select(func.min(SUBSCRIPTION.c.heartbeat_due_at)).where(
                SUBSCRIPTION.c.status == Status.ACTIVE.value, SUBSCRIPTION.c.deleted_at.is_(None)
            )
        ),
        session.scalar(
            select(func.min(SUBSCRIPTION.c.end_at)).where(
                SUBSCRIPTION.c.status != Status.OFF.value, SUBSCRIPTION.c.deleted_at.is_(None)
            )
        ),
        session.scalar(
            select(func.min(SUBSCRIPTION.c.lease_until)).where(
                SUBSCRIPTION.c.lease_until.is_not(None)
            )
        ),
    ]
    found = [aware(c) for c in candidates if c is not None]
    return min(found) if found else None


__all__ = [
    "EVENT",
    "ReferralRepository",
    "SubscriptionRepository",
    "due_condition",
    "next_due_at",
    "to_domain",
    "to_row_fields",
]
