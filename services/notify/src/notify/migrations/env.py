"""Alembic environment of the notify service (run by Alembic, not imported)."""

from __future__ import annotations

from notify.adapters.migrate import MIGRATIONS
from notify.config import get_settings
from rx_messaging.migrations import run_environment

run_environment(MIGRATIONS, lambda: get_settings().database_url)
