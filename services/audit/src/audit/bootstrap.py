"""Composition root of the audit service: nothing is built at import time."""

from __future__ import annotations

from dataclasses import dataclass, field

from rx_messaging.database import make_engine
from sqlalchemy.engine import Engine

from .adapters.migrate import MIGRATIONS
from .config import Settings
from .figures import FigureBook


@dataclass
class Container:
    settings: Settings
    engine: Engine
    figures: FigureBook = field(default_factory=FigureBook)


def bootstrap(settings: Settings, engine: Engine | None = None) -> Container:
    engine = engine or make_engine(settings.database_url)
    MIGRATIONS.upgrade(engine)  # each process: a no-op once the database is at head
    return Container(settings=settings, engine=engine)
