"""Schema migrations of the portal's database (Alembic; see ``rx_messaging.migrations``).

CLI (used by ``scripts/new-migration``)::

    python -m portal.adapters.migrate revision "<message>"
    python -m portal.adapters.migrate check
"""

from __future__ import annotations

import sys
from pathlib import Path

from rx_messaging.migrations import Migrations

from .tables import TABLES

MIGRATIONS = Migrations("portal", TABLES, Path(__file__).resolve().parent.parent / "migrations")

upgrade = MIGRATIONS.upgrade
check = MIGRATIONS.check

if __name__ == "__main__":
    sys.exit(MIGRATIONS.main())
