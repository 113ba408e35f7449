"""``python -m notify migrate``: bring the notify database to the newest schema.

Every process also does this at start, so this command is for operators who want to migrate
ahead of a deployment."""

from __future__ import annotations

from rx_messaging.database import make_engine

from ..adapters import migrate
from ..config import get_settings


def main() -> None:
    """Upgrade the database of ``NOTIFY_DATABASE_URL`` to head and say where it is now."""
    engine = make_engine(get_settings().database_url)
    try:
        migrate.upgrade(engine)
        print(f"notify database at revision {migrate.current(engine)}", flush=True)
    finally:
        engine.dispose()
