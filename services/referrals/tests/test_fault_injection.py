"""The fault injection point of the reliability tests exists only in development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from referrals.config import Settings


def test_exit_after_commit_is_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RX_FAULT_EXIT_AFTER_COMMIT", "1")
    monkeypatch.setenv("RX_ENV", "production")
    with pytest.raises(ValidationError, match="RX_FAULT_EXIT_AFTER_COMMIT is refused"):
        Settings(database_url="sqlite:///x.db")


def test_exit_after_commit_is_off_unless_asked_for_and_allowed_in_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RX_ENV", "development")
    assert Settings(database_url="sqlite:///x.db").fault_exit_after_commit is False
    monkeypatch.setenv("RX_FAULT_EXIT_AFTER_COMMIT", "1")
    assert Settings(database_url="sqlite:///x.db").fault_exit_after_commit is True
