"""The portal's one table: signed-in sessions (who, their tokens, when they end)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text

metadata = MetaData()

sessions = Table(
    "portal_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user", Text, nullable=False, comment="The signed-in person (JSON)."),
    Column("access_token", Text, nullable=False),
    Column("id_token", Text, nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

TABLES = [sessions]
