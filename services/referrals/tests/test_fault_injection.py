"""The fault injection point of the reliability tests exists only in development, and only
when asked for: the API exits right after an idempotent POST commits, before answering."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from referrals import faults
from referrals.bootstrap import bootstrap
from referrals.config import Settings
from referrals.entrypoints.api.app import create_app
from referrals.faults import ExitAfterIdempotentCommit
from referrals.service_layer.unit_of_work import UnitOfWork

BODY = {
    "referrer": {"organisation": "B81001"},
    "patient": {"postcode": "BS5 0AA"},
    "service_type": "urgent-community-response",
    "priority": "urgent",
}
GP = {"X-Organisation": "B81001", "X-Roles": "provider"}


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


class Exited(Exception):
    """Stands in for the process exiting."""


def test_the_exit_hook_stops_the_api_after_an_idempotent_post_commits_and_a_retry_is_answered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def exit_hard(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(faults.os, "_exit", exit_hard)
    monkeypatch.setenv("RX_ENV", "development")
    url = f"sqlite:///{tmp_path}/referrals.db"
    headers = {**GP, "Idempotency-Key": "lost-answer"}
    monkeypatch.setenv("RX_FAULT_EXIT_AFTER_COMMIT", "1")
    with TestClient(create_app(Settings(database_url=url))) as dying:
        assert dying.get("/referrals", headers=GP).status_code == 200, "reads are unaffected"
        with pytest.raises(Exited, match="70"):
            dying.post("/referrals", json=BODY, headers=headers)
    monkeypatch.delenv("RX_FAULT_EXIT_AFTER_COMMIT")
    with TestClient(create_app(Settings(database_url=url))) as restarted:
        retry = restarted.post("/referrals", json=BODY, headers=headers)
        assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
        listed = restarted.get("/referrals", params={"view": "sent"}, headers=GP).json()
    assert [r["id"] for r in listed["items"]] == [retry.json()["id"]], "stored once"


def test_the_exit_hook_is_installed_at_startup_only_when_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RX_ENV", "development")
    url = f"sqlite:///{tmp_path}/referrals.db"
    assert type(bootstrap(Settings(database_url=url)).uow()) is UnitOfWork
    monkeypatch.setenv("RX_FAULT_EXIT_AFTER_COMMIT", "1")
    assert isinstance(bootstrap(Settings(database_url=url)).uow(), ExitAfterIdempotentCommit)
