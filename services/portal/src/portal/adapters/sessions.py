"""Signed-in sessions, kept server-side: the browser holds only a signed cookie with the
session's id, never a token. A session ends at sign-out, when its access token expires, or
after ``idle_timeout`` without a request."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from .tables import sessions


@dataclass(frozen=True)
class User:
    """The person signed in, from their ID token."""

    username: str
    name: str
    organisation: str
    practitioner: str
    job_roles: tuple[str, ...]
    provider_type: str | None = None


@dataclass(frozen=True)
class Session:
    id: str
    user: User
    access_token: str
    id_token: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class Lookup(StrEnum):
    FOUND = "found"
    MISSING = "missing"
    EXPIRED = "expired"


class SessionStore:
    def __init__(self, engine: Engine, idle_timeout_seconds: int) -> None:
        self.engine = engine
        self.idle = timedelta(seconds=idle_timeout_seconds)

    def create(self, user: User, access_token: str, id_token: str, expires_at: datetime) -> Session:
        now = datetime.now(UTC)
        session = Session(
            id=secrets.token_urlsafe(32),
            user=user,
            access_token=access_token,
            id_token=id_token,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
        )
        row = {**asdict(session), "user": json.dumps(asdict(user))}
        with self.engine.begin() as db:
            # Sessions that ended without a sign-out go as new ones start.
            db.execute(delete(sessions).where(sessions.c.expires_at < now))
            db.execute(insert(sessions).values(row))
        return session

    def find(self, session_id: str | None) -> tuple[Lookup, Session | None]:
        """The live session ``session_id``, touched; or why there is none. An expired one is
        deleted (it cannot be revived)."""
        if not session_id:
            return Lookup.MISSING, None
        now = datetime.now(UTC)
        with self.engine.begin() as db:
            row = db.execute(select(sessions).where(sessions.c.id == session_id)).mappings().first()
            if row is None:
                return Lookup.MISSING, None
            found = _session(row)
            if found.expires_at <= now or found.last_seen_at + self.idle <= now:
                db.execute(delete(sessions).where(sessions.c.id == session_id))
                return Lookup.EXPIRED, found
            db.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen_at=now))
        return Lookup.FOUND, found

    def delete(self, session_id: str) -> None:
        with self.engine.begin() as db:
            db.execute(delete(sessions).where(sessions.c.id == session_id))


def _session(row: object) -> Session:
    values = dict(row)  # type: ignore[call-overload]
    user = json.loads(values.pop("user"))
    user["job_roles"] = tuple(user["job_roles"])
    for name in ("created_at", "last_seen_at", "expires_at"):
        if values[name].tzinfo is None:  # SQLite hands back naive datetimes
            values[name] = values[name].replace(tzinfo=UTC)
    return Session(user=User(**user), **values)
