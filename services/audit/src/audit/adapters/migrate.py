"""Schema migrations of the audit database (Alembic; see ``rx_messaging.migrations``).

CLI (used by ``scripts/new-migration``)::

    python -m audit.adapters.migrate revision "<message>"   # autogenerate the next revision
    python -m audit.adapters.migrate check                  # do the migrations match?
"""

from __future__ import annotations

import sys
from pathlib import Path

from rx_messaging.migrations import Migrations

from .tables import TABLES

MIGRATIONS = Migrations("audit", TABLES, Path(__file__).resolve().parent.parent / "migrations")

upgrade = MIGRATIONS.upgrade

if __name__ == "__main__":
    sys.exit(MIGRATIONS.main())
