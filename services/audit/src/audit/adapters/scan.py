"""Reading the whole chain for verification, in sequence order, as the driver's plain tuples."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from rx_messaging import fastsql
from sqlalchemy import Select, bindparam, literal_column, select
from sqlalchemy.engine import Engine

from ..domain.verification import ENTRY_FIELDS
from .tables import ENTRY

CHUNK = 5000


@functools.cache
def _scan_query(chunk: int) -> Select[Any]:
    return (
        select(*(ENTRY.c[name] for name in ENTRY_FIELDS))
        .where(ENTRY.c.sequence > bindparam("after"))
        .order_by(ENTRY.c.sequence)
        .limit(literal_column(str(int(chunk))))
    )


def scan(engine: Engine, chunk: int = CHUNK) -> Iterator[Sequence[Any]]:
    """Entries as tuples of :data:`~audit.domain.verification.ENTRY_FIELDS`, ``chunk`` at a
    time.

    Read through a raw driver cursor, as verification is bound by the cost per row. On SQLite
    that also means no transaction is held, so appends carry on while a long chain is
    verified; the chain is append-only, so each chunk still sees whole entries."""
    last, query = 0, _scan_query(chunk)
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            while True:
                rows = fastsql.fetch_tuples(cursor, conn.dialect, query, {"after": last})
                if not rows:
                    return
                yield rows
                last = rows[-1][0]
        finally:
            cursor.close()
