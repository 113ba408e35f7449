"""Composition root: builds the engine, unit-of-work factory and the endpoint checks.
Nothing is built at import time; the API lifespan and each worker's main() call this."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rx_messaging.database import make_engine
from sqlalchemy.engine import Engine

from .adapters import migrate
from .adapters.sender import Resolver, system_resolver
from .config import Settings
from .domain.endpoint import EndpointPolicy
from .service_layer.handlers import Checks
from .service_layer.unit_of_work import UnitOfWork, session_factory


@dataclass
class Container:
    settings: Settings
    engine: Engine
    uow: Callable[[], UnitOfWork]
    checks: Checks


def bootstrap(
    settings: Settings, engine: Engine | None = None, resolver: Resolver = system_resolver
) -> Container:
    engine = engine or make_engine(settings.database_url)
    migrate.upgrade(engine)  # each process: a no-op once the database is at head
    sessions = session_factory(engine)
    policy = EndpointPolicy.of(settings.allow_loopback, settings.allowed_networks)
    return Container(
        settings=settings,
        engine=engine,
        uow=lambda: UnitOfWork(sessions),
        checks=Checks(policy, resolver),
    )
