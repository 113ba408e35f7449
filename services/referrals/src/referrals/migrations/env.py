"""Alembic environment of the referrals service (run by Alembic, not imported).

Migrates the connection handed over in ``config.attributes["connection"]`` (how
``referrals.adapters.migrate`` calls it, so the caller owns the transaction); without one,
the database of ``REFERRALS_DATABASE_URL`` from the service settings.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from referrals.adapters.migrate import target_metadata
from referrals.config import get_settings
from rx_messaging.database import make_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import TypeDecorator

config = context.config
metadata = target_metadata()


def render_item(type_: str, obj: Any, _autogen_context: Any) -> str | bool:
    """Write SQLModel's column types (AutoString, UTCDateTime) as the SQLAlchemy types they
    store as, e.g. ``sa.String(length=64)``, ``sa.DateTime(timezone=True)``: a migration
    describes DDL only, and must not break when SQLModel moves its internals."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        impl = obj.impl_instance
        if type(obj).__module__.startswith("sqlmodel.") and type(impl).__module__.startswith(
            "sqlalchemy."
        ):
            return f"sa.{impl!r}"
    return False


def options(dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": metadata,
        "compare_type": True,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        "render_as_batch": dialect_name == "sqlite",
        "render_item": render_item,
    }


def run(connection: Connection) -> None:
    context.configure(connection=connection, **options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """``--sql`` mode: print the SQL for the configured database instead of running it."""
    url = get_settings().database_url
    context.configure(url=url, literal_binds=True, **options(url.split(":", 1)[0].split("+")[0]))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        run(given)
        return
    engine: Engine = (
        given if isinstance(given, Engine) else make_engine(get_settings().database_url)
    )
    try:
        with engine.begin() as connection:
            run(connection)
    finally:
        if given is None:
            engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
