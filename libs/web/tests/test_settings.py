"""RX_ENV: outside development a process refuses the secrets this repository ships, the
database and Kafka passwords among them; every service reads the shared Kafka settings."""

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


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", extra="ignore")

    database_url: str = "sqlite:///:memory:"
    port: int = 8000
    consumer_group: str = "example"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "RX_ENV",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)


def sasl(monkeypatch: pytest.MonkeyPatch, password: str, stage: str | None = None) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "routing")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", password)
    if stage is not None:
        monkeypatch.setenv("RX_ENV", stage)


def test_by_default_a_service_connects_in_plaintext_as_production() -> None:
    settings = Settings()
    assert settings.rx_env is Environment.PRODUCTION
    assert not settings.kafka_auth.uses_sasl


def test_the_kafka_credentials_come_from_the_shared_unprefixed_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sasl(monkeypatch, "kX9-generated-secret", stage="production")
    auth = Settings().kafka_auth
    assert (auth.username, auth.password) == ("routing", "kX9-generated-secret")
    assert "kX9-generated-secret" not in repr(Settings())


def test_a_default_kafka_password_is_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sasl(monkeypatch, "routing-dev", stage="production")
    with pytest.raises(ValidationError, match="default"):
        Settings()


def test_the_same_default_password_is_fine_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    sasl(monkeypatch, "routing-dev", stage="development")
    assert Settings().kafka_auth.password == "routing-dev"


def test_sasl_without_a_password_is_refused_naming_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        Settings()
