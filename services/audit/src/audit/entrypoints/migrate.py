"""``python -m audit migrate``: bring the audit database to the newest schema.

Every process also does this at start (one at a time: PostgreSQL advisory lock, SQLite write
lock), so this command is for operators who want to migrate ahead of a deployment."""

from __future__ import annotations

from ..adapters.migrate import MIGRATIONS
from ..config import get_settings


def main() -> None:
    """Upgrade the database of ``AUDIT_DATABASE_URL`` to head and say where it is now."""
    MIGRATIONS.upgrade_database(get_settings().database_url)
