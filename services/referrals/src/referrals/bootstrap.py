"""Composition root: builds the engine, unit-of-work factory and Kafka adapters.
Nothing is built at import time; the API lifespan and each worker's main() call this."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rx_messaging.database import make_engine
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from .adapters.tables import TABLES
from .config import Settings
from .service_layer.unit_of_work import UnitOfWork, session_factory


@dataclass
class Container:
    settings: Settings
    engine: Engine
    uow: Callable[[], UnitOfWork]


def bootstrap(settings: Settings, engine: Engine | None = None) -> Container:
    engine = engine or make_engine(settings.database_url)
    SQLModel.metadata.create_all(engine, tables=TABLES)
    sessions = session_factory(engine)
    return Container(settings=settings, engine=engine, uow=lambda: UnitOfWork(sessions))
