"""Settings with a default that depends on the database."""

from __future__ import annotations

from referrals.config import SQLITE_API_THREADS, Settings


def test_on_sqlite_the_api_runs_its_routes_in_few_threads_unless_told_otherwise() -> None:
    assert Settings(database_url="sqlite:///x.db").worker_threads() == SQLITE_API_THREADS
    assert Settings(database_url="postgresql+psycopg://h/db").worker_threads() is None
    assert Settings(database_url="sqlite:///x.db", api_threads=8).worker_threads() == 8
