"""Composition root: builds the engine, unit-of-work factory and Kafka adapters.
Nothing is built at import time; the API lifespan and each worker's main() call this."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from rx_messaging.database import make_engine
from sqlalchemy.engine import Engine

from .adapters import migrate
from .config import Settings
from .faults import ExitAfterIdempotentCommit
from .service_layer.unit_of_work import UnitOfWork, session_factory


@dataclass
class Container:
    settings: Settings
    engine: Engine
    uow: Callable[[], UnitOfWork]


def json_text(value: Any) -> str:
    """JSON columns' text (stored responses, superseded versions) written by pydantic-core:
    the same JSON as ``json.dumps``, non-ASCII characters as UTF-8 rather than escapes."""
    return pydantic_core.to_json(value).decode()


def bootstrap(settings: Settings, engine: Engine | None = None) -> Container:
    engine = engine or make_engine(settings.database_url, json_serializer=json_text)
    migrate.upgrade(engine)  # each process: a no-op once the database is at head
    sessions = session_factory(engine)
    # The reliability tests' fault (development only): the hook is installed here or not at all.
    unit = ExitAfterIdempotentCommit if settings.fault_exit_after_commit else UnitOfWork
    return Container(settings=settings, engine=engine, uow=lambda: unit(sessions))
