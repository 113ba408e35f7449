"""Running a few fixed statements without SQLAlchemy's per-call work, on the consumers' hot
paths (a handler's lookups, the write buffer's inserts, the audit chain's scan).

A statement is compiled once per dialect. Each call then converts its parameters with the
bind processors SQLAlchemy itself would use (dates to SQLite's text form, JSON columns to
text, …) and hands the SQL straight to the driver's cursor, on the connection's DBAPI
connection and so in its transaction. Skipped, and the reason this is fast: statement-cache
lookups, parameter set-up, result wrapping, engine events and exception wrapping (driver
errors arrive as the driver raised them). Rows come back as the driver's tuples, unconverted.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class Compiled:
    """A statement as its driver wants it: SQL text and how to lay out the parameters."""

    sql: str
    names: tuple[str, ...]
    """Parameter names, in order for a positional parameter style (SQLite's ``?``)."""
    positional: bool
    defaults: dict[str, Any]
    """Values the statement carries itself (e.g. a literal SQLAlchemy turned into a bind)."""
    processors: tuple[Processor | None, ...]
    """Per name, the column type's conversion to what the driver takes (None: as is)."""

    def params(self, given: Mapping[str, Any]) -> Any:
        """``given`` (by name) as the driver's parameters: a list (positional) or a dict."""
        # Per row on the hot paths, hence the C-level itemgetter and touching only the
        # parameters that need converting.
        values = list(self._pick({**self.defaults, **given} if self.defaults else given))
        for index, process in self._convert:
            value = values[index]
            if value is not None:
                values[index] = process(value)
        if self.positional:
            return values
        return dict(zip(self.names, values, strict=True))

    @functools.cached_property
    def _pick(self) -> Callable[[Mapping[str, Any]], Sequence[Any]]:
        if len(self.names) > 1:
            return operator.itemgetter(*self.names)
        return lambda given: tuple(given[name] for name in self.names)

    @functools.cached_property
    def _convert(self) -> tuple[tuple[int, Processor], ...]:
        return tuple((i, p) for i, p in enumerate(self.processors) if p is not None)


@functools.cache
def compiled(statement: ClauseElement, dialect: Dialect) -> Compiled:
    """``statement`` compiled for ``dialect``, once."""
    result = cast(SQLCompiler, statement.compile(dialect=dialect))
    if result.literal_execute_params or result.post_compile_params:
        raise ValueError("statements with expanding (IN) parameters are not supported here")
    positional = result.positiontup is not None
    # Rendered parameter name → its bind (anonymous binds are renamed when rendered).
    binds = {name: bind for bind, name in result.bind_names.items()}
    names = tuple(result.positiontup or binds)
    processors = tuple(
        binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    return Compiled(result.string, names, positional, dict(result.params), processors)


@functools.cache
def insert_into(table: Table, columns: tuple[str, ...]) -> ClauseElement:
    """``INSERT INTO table (columns…) VALUES (…)``, one statement object per column set (so
    its compiled form is cached)."""
    return insert(table).values({name: bindparam(name) for name in columns})


def cursor(conn: Connection) -> Any:
    """A fresh cursor on ``conn``'s DBAPI connection: in ``conn``'s transaction."""
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def execute(conn: Connection, statement: ClauseElement, params: Mapping[str, Any]) -> Any:
    """Run ``statement`` in ``conn``'s transaction; the driver's cursor, to fetch from."""
    query = compiled(statement, conn.dialect)
    raw = cursor(conn)
    raw.execute(query.sql, query.params(params))
    return raw


def execute_many(
    conn: Connection, statement: ClauseElement, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Run ``statement`` once per row, in one driver call."""
    if rows:
        query = compiled(statement, conn.dialect)
        cursor(conn).executemany(query.sql, [query.params(row) for row in rows])


def fetch_tuples(
    raw_cursor: Any, dialect: Dialect, statement: ClauseElement, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Rows of a query as the driver's plain tuples, through a raw DBAPI cursor."""
    query = compiled(statement, dialect)
    raw_cursor.execute(query.sql, query.params(params))
    return list(raw_cursor.fetchall())
