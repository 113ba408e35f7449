"""The audit API (``python -m audit api``): query the log and verify the chain (ops only)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel
from rx_contracts import Role
from rx_web.app import service_app
from rx_web.identity import require_roles
from rx_web.problems import Problem
from sqlmodel import Session, col, select

from . import chain
from .bootstrap import Container, bootstrap
from .config import Settings, get_settings
from .tables import AuditEntry


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.container.engine) as session:
        yield session


Db = Annotated[Session, Depends(get_session)]
OPS = Depends(require_roles(Role.OPS))


class EntryPublic(BaseModel):
    sequence: int
    event_id: str
    type: str
    referral_id: str
    actor_org: str | None
    topic: str
    partition: int
    offset: int
    occurred_at: datetime
    recorded_at: datetime
    payload: dict[str, Any]
    hash: str


class TimelineStep(BaseModel):
    """One event of a referral's journey, with the time since the journey began."""

    sequence: int
    event_id: str
    type: str
    actor_org: str | None
    topic: str
    occurred_at: datetime
    elapsed_seconds: float


class VerificationPublic(BaseModel):
    ok: bool
    entries: int
    head_hash: str
    first_broken: int | None
    problem: str | None


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    app = service_app(
        "audit",
        "Tamper-evident log of every event on every topic.",
        lambda: container or bootstrap(settings or get_settings()),
    )

    @app.get("/audit/entries", response_model=list[EntryPublic], tags=["audit"], dependencies=[OPS])
    def entries(
        db: Db,
        referral_id: str | None = None,
        type: str | None = None,
        after: Annotated[int, Query(ge=0, description="Return entries after this sequence.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[EntryPublic]:
        """Entries in chain order; page with ``after`` = the last sequence you saw."""
        query = select(AuditEntry).where(col(AuditEntry.sequence) > after)
        if referral_id:
            query = query.where(AuditEntry.referral_id == referral_id)
        if type:
            query = query.where(AuditEntry.type == type)
        rows = db.exec(query.order_by(col(AuditEntry.sequence)).limit(limit))
        return [EntryPublic.model_validate(r, from_attributes=True) for r in rows]

    @app.get(
        "/audit/referrals/{referral_id}/timeline",
        response_model=list[TimelineStep],
        tags=["audit"],
        dependencies=[OPS],
    )
    def timeline(referral_id: str, db: Db) -> list[TimelineStep]:
        """A referral's events in the order they happened (event time; chain sequence breaks
        ties). Chain order is the order of recording, which can differ across topics."""
        query = select(AuditEntry).where(AuditEntry.referral_id == referral_id)
        rows = list(db.exec(query.order_by(col(AuditEntry.occurred_at), col(AuditEntry.sequence))))
        if not rows:
            raise Problem(404, "Referral not found", f"no audit entries for referral {referral_id}")
        start = _utc(rows[0].occurred_at)
        return [
            TimelineStep(
                sequence=r.sequence,
                event_id=r.event_id,
                type=r.type,
                actor_org=r.actor_org,
                topic=r.topic,
                occurred_at=_utc(r.occurred_at),
                elapsed_seconds=(_utc(r.occurred_at) - start).total_seconds(),
            )
            for r in rows
        ]

    @app.get("/audit/verify", response_model=VerificationPublic, tags=["audit"], dependencies=[OPS])
    def verify(db: Db) -> VerificationPublic:
        """Recompute the whole chain and report the first entry that does not fit."""
        result = chain.verify(chain.all_entries(db))
        return VerificationPublic(**result.__dict__)

    return app


def _utc(value: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
