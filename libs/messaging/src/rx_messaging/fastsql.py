"""Running a few fixed statements without SQLAlchemy's per-call work, on the consumers' hot
paths (a handler's lookups, the write buffer's inserts, the audit chain's scan).

A statement is compiled once per dialect. Each call then converts its parameters to exactly
what SQLAlchemy's own bind processors would give (dates to SQLite's text form, JSON columns to
text, …) and hands the SQL straight to the driver's cursor, on the connection's DBAPI
connection and so in its transaction. Skipped, and the reason this is fast: statement-cache
lookups, parameter set-up, result wrapping, engine events and exception wrapping (driver
errors arrive as the driver raised them). Rows come back as the driver's tuples, unconverted.

The conversions are SQLAlchemy's, except for the commonest values of the hot paths' column
types, which take a shortcut to the same result (:func:`_shortcut`: an aware UTC datetime
straight to SQLite's text form, bytes to SQLite as they are); an ``executemany`` converts each
value object once, however many of its rows hold it (a batch's rows share instants and
headers).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

from sqlalchemy import LargeBinary, Select, Table, bindparam, insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine
from sqlmodel.sql.sqltypes import UTCDateTime

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

    def params_many(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """:meth:`params` of each row, converting each value object once: rows of one batch
        share objects (an event's instant in several columns and rows, one header list in
        each topic's outbox row). Keyed on identity, so it holds for any column type: every
        value stays alive (in ``rows``) until the call returns, so no id is reused."""
        if not self._convert:
            return [self.params(row) for row in rows]
        pick, defaults, convert = self._pick, self.defaults, self._convert
        done: dict[int, Any] = {}
        out = []
        for row in rows:
            values = list(pick({**defaults, **row} if defaults else row))
            for index, process in convert:
                value = values[index]
                if value is not None:
                    key = id(value)
                    converted = done.get(key, done)
                    if converted is done:
                        converted = done[key] = process(value)
                    values[index] = converted
            out.append(values if self.positional else dict(zip(self.names, values, strict=True)))
        return out

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
    processors = tuple(_processor(binds[name].type, dialect) for name in names)
    return Compiled(result.string, names, positional, dict(result.params), processors)


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    """How a value of ``type_`` goes to ``dialect``'s driver: SQLAlchemy's bind processor, or
    a shortcut to the same result for the commonest values."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return None
    shortcut = _shortcut(type_, dialect, process)
    return process if shortcut is None else shortcut


_SQLITE_TEXT_SAMPLES = (
    datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # whole seconds: SQLite's form still has .000000
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(2026, 7, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=1))),
)


def _shortcut(type_: TypeEngine[Any], dialect: Dialect, process: Processor) -> Processor | None:
    """A faster ``process`` for the values the hot paths bind most, anything else handed to
    ``process`` itself; None where there is none. Each shortcut is checked against
    ``process`` on sample values when the statement is compiled (a SQLAlchemy upgrade that
    changed the stored form would quietly fall back to SQLAlchemy's own conversion)."""
    if dialect.name != "sqlite":
        return None
    shortcut: Processor
    if isinstance(type_, UTCDateTime):

        def shortcut(value: Any) -> Any:
            # SQLAlchemy: to UTC (UTCDateTime), then "%04d-%02d-%02d %02d:%02d:%02d.%06d".
            # Formatted here from the fields (the day's text kept: a batch's instants share
            # their day), which costs about half of an aware datetime's isoformat(); an
            # instant at offset zero in another tzinfo class (pydantic's) is not converted.
            if value.__class__ is datetime:
                offset = value.utcoffset()
                if offset is not None:
                    if offset:
                        value = value.astimezone(UTC)
                    day = _DAYS.get(value.toordinal())
                    if day is None:
                        day = _day(value)
                    return "%s %02d:%02d:%02d.%06d" % (  # noqa: UP031 (faster here)
                        day,
                        value.hour,
                        value.minute,
                        value.second,
                        value.microsecond,
                    )
            return process(value)  # naive (refused), a date, a subclass: SQLAlchemy decides

        samples: tuple[Any, ...] = _SQLITE_TEXT_SAMPLES
    elif isinstance(type_, LargeBinary):

        def shortcut(value: Any) -> Any:
            # SQLAlchemy wraps bytes in a memoryview (sqlite3.Binary); SQLite stores bytes as
            # the same BLOB.
            return value if value.__class__ is bytes else process(value)

        samples = ()
    else:
        return None
    if any(shortcut(sample) != process(sample) for sample in samples):
        return None
    return shortcut


_DAYS: dict[int, str] = {}
"""A day's text (``YYYY-MM-DD``) by its ordinal, for the datetime shortcut."""


def _day(value: datetime) -> str:
    if len(_DAYS) >= 64:
        _DAYS.clear()  # a long-running process sees a new day now and then
    day = _DAYS[value.toordinal()] = value.date().isoformat()
    return day


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
        cursor(conn).executemany(query.sql, query.params_many(rows))


def fetch_rows(
    conn: Connection, statement: Select[Any], params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Rows of a query as tuples (in the order of its columns), each value converted as
    SQLAlchemy's result would convert it (a JSON column's text to its value, SQLite's
    datetime text to a datetime)."""
    raw = execute(conn, statement, params)
    rows = raw.fetchall()
    if not rows:
        return []
    coltypes = tuple(column[1] for column in raw.description)
    convert = _result_processors(statement, conn.dialect, coltypes)
    if not convert:
        return [tuple(row) for row in rows]
    out = []
    for row in rows:
        values = list(row)
        for index, process in convert:
            values[index] = process(values[index])
        out.append(tuple(values))
    return out


@functools.cache
def _result_processors(
    statement: Select[Any], dialect: Dialect, coltypes: tuple[Any, ...]
) -> tuple[tuple[int, Processor], ...]:
    """Per selected column that needs one, the conversion SQLAlchemy's result applies."""
    found = []
    for index, (column, coltype) in enumerate(
        zip(statement.selected_columns, coltypes, strict=True)
    ):
        process = column.type._cached_result_processor(dialect, coltype)
        if process is not None:
            found.append((index, process))
    return tuple(found)


def fetch_tuples(
    raw_cursor: Any, dialect: Dialect, statement: ClauseElement, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Rows of a query as the driver's plain tuples, through a raw DBAPI cursor."""
    query = compiled(statement, dialect)
    raw_cursor.execute(query.sql, query.params(params))
    return list(raw_cursor.fetchall())
