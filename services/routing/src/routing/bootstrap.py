"""Composition root of the routing service; called by the API lifespan and worker mains."""

from __future__ import annotations

from dataclasses import dataclass

from rx_messaging.database import make_engine
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from .adapters.tables import TABLES
from .config import Settings


@dataclass
class Container:
    settings: Settings
    engine: Engine


def bootstrap(settings: Settings, engine: Engine | None = None) -> Container:
    engine = engine or make_engine(settings.database_url)
    SQLModel.metadata.create_all(engine, tables=TABLES)
    return Container(settings=settings, engine=engine)
