"""The service's own tests call its API with the development identity headers."""

from __future__ import annotations

import pytest
from rx_web.testing import use_dev_headers


@pytest.fixture(autouse=True)
def _dev_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    use_dev_headers(monkeypatch)
