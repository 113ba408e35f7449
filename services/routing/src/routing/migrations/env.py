"""Alembic environment of the routing service (run by Alembic, not imported)."""

from __future__ import annotations

from routing.adapters.migrate import MIGRATIONS
from routing.config import get_settings
from rx_messaging.migrations import run_environment

run_environment(MIGRATIONS, lambda: get_settings().database_url)
