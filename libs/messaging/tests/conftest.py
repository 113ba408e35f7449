from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rx_contracts import Envelope, examples, wrap
from rx_messaging.database import make_engine
from rx_messaging.tables import InboxMessage, OutboxMessage
from sqlalchemy import Column, String
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, func, select


class Effect(SQLModel, table=True):
    """A stand-in for a service's own rows: what a handler writes per event."""

    __tablename__ = "test_effect"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(sa_column=Column(String(64), nullable=False))
    referral_id: str


TABLES = [t.__table__ for t in (Effect, InboxMessage, OutboxMessage)]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    SQLModel.metadata.create_all(engine, tables=TABLES)
    return engine


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    """A fresh database on SQLite and on PostgreSQL (``database_url`` is parametrized)."""
    engine = make_engine(database_url)
    SQLModel.metadata.create_all(engine, tables=TABLES)
    yield engine
    engine.dispose()


def make_event(referral_id: str = "r-1") -> Envelope:
    return wrap(examples.referral_submitted(referral_id), source="/tests")


@pytest.fixture
def event_factory() -> Callable[..., Envelope]:
    return make_event


def pending_count(engine: Engine) -> int:
    """Outbox rows not yet published."""
    with Session(engine) as session:
        unsent = select(func.count()).where(col(OutboxMessage.sent_at).is_(None))
        return session.exec(unsent.select_from(OutboxMessage)).one()
