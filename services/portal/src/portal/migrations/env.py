"""Alembic environment of the portal (run by Alembic, not imported)."""

from __future__ import annotations

from portal.adapters.migrate import MIGRATIONS
from portal.config import get_settings
from rx_messaging.migrations import run_environment

run_environment(MIGRATIONS, lambda: get_settings().database_url)
