"""Sessions end at sign-out, when their token expires, or after the idle timeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from portal.adapters import migrate
from portal.adapters.sessions import Lookup, SessionStore, User
from portal.adapters.tables import sessions
from rx_messaging.database import make_engine
from sqlalchemy import update
from sqlalchemy.engine import Engine

USER = User("rxa01.clinician", "Jamie Walsh", "RXA01", "N7100041", ("clinician",), "rapid-response")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'portal.db'}")
    migrate.upgrade(engine)
    return engine


def test_the_migrations_match_the_tables(engine: Engine) -> None:
    assert migrate.check(engine) == []


def test_a_session_is_found_with_its_person_until_sign_out(engine: Engine) -> None:
    store = SessionStore(engine, idle_timeout_seconds=600)
    created = store.create(USER, "access", "id", datetime.now(UTC) + timedelta(hours=1))
    lookup, found = store.find(created.id)
    assert lookup is Lookup.FOUND and found is not None
    assert found.user == USER and found.access_token == "access"
    assert found.csrf_token == created.csrf_token and len(found.csrf_token) >= 32
    store.delete(created.id)
    assert store.find(created.id) == (Lookup.MISSING, None)
    assert store.find(None) == (Lookup.MISSING, None)


def test_a_session_ends_with_its_token(engine: Engine) -> None:
    store = SessionStore(engine, idle_timeout_seconds=600)
    created = store.create(USER, "access", "id", datetime.now(UTC) - timedelta(seconds=1))
    assert store.find(created.id)[0] is Lookup.EXPIRED
    assert store.find(created.id)[0] is Lookup.MISSING, "an expired session is gone"


def test_a_session_left_idle_ends_and_one_in_use_does_not(engine: Engine) -> None:
    store = SessionStore(engine, idle_timeout_seconds=60)
    idle = store.create(USER, "a", "i", datetime.now(UTC) + timedelta(hours=1))
    busy = store.create(USER, "b", "j", datetime.now(UTC) + timedelta(hours=1))
    long_ago = datetime.now(UTC) - timedelta(seconds=61)
    with engine.begin() as db:
        db.execute(update(sessions).where(sessions.c.id == idle.id).values(last_seen_at=long_ago))
    assert store.find(idle.id)[0] is Lookup.EXPIRED
    assert store.find(busy.id)[0] is Lookup.FOUND
