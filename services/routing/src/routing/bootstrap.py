"""Composition root of the routing service; called by the API lifespan and worker mains."""

from __future__ import annotations

from dataclasses import dataclass, field

from rx_messaging.database import make_engine
from sqlalchemy.engine import Engine

from .adapters import migrate
from .adapters.cache import DirectoryCache
from .config import Settings
from .domain.clock import Clock, SystemClock


@dataclass
class Container:
    settings: Settings
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)
    directory: DirectoryCache = field(default_factory=DirectoryCache)
    """The directory, rules and policies, re-read only when an administrator changed them."""


def bootstrap(
    settings: Settings, engine: Engine | None = None, clock: Clock | None = None
) -> Container:
    engine = engine or make_engine(settings.database_url)
    migrate.upgrade(engine)  # each process: a no-op once the database is at head
    return Container(settings=settings, engine=engine, clock=clock or SystemClock())
