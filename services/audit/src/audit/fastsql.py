"""Running a few fixed statements without SQLAlchemy's per-call work, for the two hot paths
(appending at ingest, reading the chain to verify it).

A statement is compiled once per dialect; each call then hands its SQL text straight to the
driver. Parameters are passed by name and put in the order a positional driver (SQLite)
wants."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


@dataclass(frozen=True)
class Compiled:
    sql: str
    order: tuple[str, ...] | None
    """Parameter names in order, for positional parameter styles (SQLite's ``?``)."""
    defaults: dict[str, Any]
    """Values the statement carries itself (e.g. an OFFSET 0 SQLAlchemy adds)."""

    def params(self, given: Mapping[str, Any]) -> Any:
        merged = {**self.defaults, **given}
        return tuple(merged[name] for name in self.order) if self.order is not None else merged


@functools.cache
def compiled(statement: ClauseElement, dialect: Dialect) -> Compiled:
    """``statement`` compiled for ``dialect``, once."""
    result = cast(SQLCompiler, statement.compile(dialect=dialect))
    order = result.positiontup
    return Compiled(result.string, tuple(order) if order is not None else None, dict(result.params))


def execute(conn: Connection, statement: ClauseElement, params: Mapping[str, Any]) -> None:
    """Run ``statement`` in ``conn``'s transaction (SQLAlchemy's events still fire)."""
    query = compiled(statement, conn.dialect)
    conn.exec_driver_sql(query.sql, query.params(params))


def execute_many(conn: Connection, statement: ClauseElement, rows: list[Mapping[str, Any]]) -> None:
    """Run ``statement`` once per row, in one driver call."""
    query = compiled(statement, conn.dialect)
    conn.exec_driver_sql(query.sql, [query.params(row) for row in rows])


def fetch_tuples(
    cursor: Any, dialect: Dialect, statement: ClauseElement, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Rows of a query as the driver's plain tuples, through a raw DBAPI ``cursor``."""
    query = compiled(statement, dialect)
    cursor.execute(query.sql, query.params(params))
    return list(cursor.fetchall())
