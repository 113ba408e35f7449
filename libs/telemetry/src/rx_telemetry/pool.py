"""Database connection pool use, read from a SQLAlchemy engine when scraped."""

from __future__ import annotations

from typing import Any

from .metrics import Sample, add_probe


def add_pool_probe(engine: Any, process: str) -> None:
    """``rx_db_pool_connections{process, state}``: connections checked out (in use) and
    idle in the pool, and the pool's configured size (pools without one report none)."""

    def read() -> Sample:
        pool = engine.pool
        samples: dict[tuple[str, ...], float] = {}
        for state, method in (("in_use", "checkedout"), ("idle", "checkedin"), ("size", "size")):
            reader = getattr(pool, method, None)
            if reader is not None:
                samples[(process, state)] = float(reader())
        return samples

    add_probe(
        "rx_db_pool_connections",
        "Database connections of this process's pool: in_use, idle, and the pool size.",
        ["process", "state"],
        read,
        key=process,
    )
