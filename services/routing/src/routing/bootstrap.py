"""Composition root: builds the engine, the unit-of-work factory, the clock and the
directory cache. Nothing is built at import time; the API lifespan and each worker's main()
call this."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rx_messaging.database import make_engine
from sqlalchemy.engine import Engine

from .adapters import migrate
from .adapters.cache import DirectoryCache
from .config import Settings
from .domain.clock import Clock, SystemClock
from .service_layer.unit_of_work import UnitOfWork, session_factory


@dataclass
class Container:
    settings: Settings
    engine: Engine
    uow: Callable[[], UnitOfWork]
    clock: Clock
    directory: DirectoryCache
    """The directory, rules and policies, re-read only when an administrator changed them."""


def bootstrap(
    settings: Settings, engine: Engine | None = None, clock: Clock | None = None
) -> Container:
    engine = engine or make_engine(settings.database_url)
    migrate.upgrade(engine)  # each process: a no-op once the database is at head
    sessions, directory = session_factory(engine), DirectoryCache()
    return Container(
        settings=settings,
        engine=engine,
        uow=lambda: UnitOfWork(sessions, directory),
        clock=clock or SystemClock(),
        directory=directory,
    )
