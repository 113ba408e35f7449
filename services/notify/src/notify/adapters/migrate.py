"""Schema migrations of the notify database (Alembic; see ``rx_messaging.migrations``).

CLI (used by ``scripts/new-migration``)::

    python -m notify.adapters.migrate revision "<message>"   # autogenerate the next revision
    python -m notify.adapters.migrate check                  # do the migrations match?
"""

from __future__ import annotations

import sys
from pathlib import Path

from rx_messaging.migrations import MigrationError, Migrations

from .tables import TABLES

MIGRATIONS = Migrations("notify", TABLES, Path(__file__).resolve().parent.parent / "migrations")

upgrade = MIGRATIONS.upgrade
downgrade = MIGRATIONS.downgrade
head = MIGRATIONS.head
current = MIGRATIONS.current
check = MIGRATIONS.check
target_metadata = MIGRATIONS.target_metadata
migration_transaction = MIGRATIONS.transaction

__all__ = [
    "MIGRATIONS",
    "MigrationError",
    "check",
    "current",
    "downgrade",
    "head",
    "migration_transaction",
    "target_metadata",
    "upgrade",
]

if __name__ == "__main__":
    sys.exit(MIGRATIONS.main())
