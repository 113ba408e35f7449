"""Helpers for the services' tests (not used by the services themselves)."""

from __future__ import annotations

import pytest


def use_dev_headers(monkeypatch: pytest.MonkeyPatch, rate_per_second: float = 0) -> None:
    """Apps built in this test identify callers by the development headers (X-Organisation,
    X-Roles, …) instead of tokens, with rate limits off unless ``rate_per_second`` is given.
    Tokens themselves are tested in tests/security."""
    monkeypatch.setenv("RX_ENV", "development")
    monkeypatch.setenv("RX_AUTH", "dev-headers")
    monkeypatch.setenv("RX_RATE_LIMIT_PER_SECOND", str(rate_per_second))
