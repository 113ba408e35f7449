"""Composition root: builds the engine, the unit-of-work factory, the checkpoint keys and
reader, and the figures' read model. Nothing is built at import time; the API lifespan and each worker's main()
call this."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rx_messaging.database import make_engine
from sqlalchemy.engine import Engine

from .adapters import migrate
from .adapters.checkpoint_keys import CheckpointKeys
from .adapters.checkpoint_topic import Published, checkpoint_reader
from .config import Settings
from .service_layer.figures import FigureBook
from .service_layer.unit_of_work import UnitOfWork, session_factory


@dataclass
class Container:
    settings: Settings
    engine: Engine
    uow: Callable[[], UnitOfWork]
    checkpoint_keys: CheckpointKeys
    checkpoints: Callable[[str], Sequence[Published]]
    """A chain's checkpoints, read back from Kafka, their signatures checked."""
    figures: FigureBook = field(default_factory=FigureBook)


def bootstrap(settings: Settings, engine: Engine | None = None) -> Container:
    engine = engine or make_engine(settings.database_url)
    migrate.upgrade(engine)  # each process: a no-op once the database is at head
    sessions = session_factory(engine)
    keys = CheckpointKeys(settings.checkpoint_keys_file, settings.rx_env)
    keys.load()  # a development key outside development is refused at start
    return Container(
        settings=settings,
        engine=engine,
        uow=lambda: UnitOfWork(sessions),
        checkpoint_keys=keys,
        checkpoints=checkpoint_reader(settings, keys.trusted),
    )
