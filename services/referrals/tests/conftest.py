"""The service's own tests call its API with the development identity headers, and most take
the app on a SQLite database of their own (``client``, ``db_url``); a module that runs on both
databases overrides ``db_url``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from referrals.config import Settings
from referrals.entrypoints.api.app import create_app
from rx_web.testing import use_dev_headers


@pytest.fixture(autouse=True)
def _dev_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    use_dev_headers(monkeypatch)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A SQLite database of the test's own."""
    return f"sqlite:///{tmp_path / 'referrals.db'}"


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    """The service (JSON API and FHIR face) on ``db_url``."""
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        yield c
