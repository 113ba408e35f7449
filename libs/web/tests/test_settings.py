"""RX_ENV: outside development a process refuses the secrets this repository ships."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict
from rx_web.settings import (
    DefaultSecretError,
    Environment,
    ServiceSettings,
    refuse_default_secrets,
)


class ExampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", extra="ignore")

    database_url: str = "sqlite:///example.db"
    port: int = 1
    consumer_group: str = "example"
    broker_password: SecretStr | None = None


COMPOSE_URL = "postgresql+psycopg://referrals:referrals-dev@postgres:5432/referrals"


def test_production_is_the_default_and_refuses_the_compose_database_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RX_ENV", raising=False)
    with pytest.raises(ValidationError, match="default secrets in database_url"):
        ExampleSettings(database_url=COMPOSE_URL)
    own = COMPOSE_URL.replace("referrals-dev", "a-real-one")
    assert ExampleSettings(database_url=own).rx_env is Environment.PRODUCTION


def test_any_secret_setting_holding_a_shipped_default_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RX_ENV", "production")
    monkeypatch.setenv("EXAMPLE_BROKER_PASSWORD", "postgres-dev")
    with pytest.raises(ValidationError, match="broker_password"):
        ExampleSettings()


def test_development_accepts_the_shipped_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RX_ENV", "development")
    monkeypatch.setenv("EXAMPLE_BROKER_PASSWORD", "postgres-dev")
    assert ExampleSettings(database_url=COMPOSE_URL).rx_env is Environment.DEVELOPMENT


def test_the_helper_takes_extra_defaults_and_names_every_offender() -> None:
    with pytest.raises(DefaultSecretError, match="a, c"):
        refuse_default_secrets(
            Environment.PRODUCTION,
            {"a": "kafka-demo", "b": "fine", "c": SecretStr("audit-dev"), "d": None},
            defaults={"kafka-demo"},
        )
    refuse_default_secrets(Environment.DEVELOPMENT, {"a": "kafka-demo"}, defaults={"kafka-demo"})
