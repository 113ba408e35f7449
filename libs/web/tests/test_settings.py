"""Every service reads the shared Kafka security settings, and outside development refuses the
well-known default passwords instead of starting with them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict
from rx_web.settings import ServiceSettings


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


def test_by_default_a_service_connects_in_plaintext_in_development() -> None:
    settings = Settings()
    assert settings.environment == "development"
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
    with pytest.raises(ValidationError, match="well-known default"):
        Settings()


def test_the_same_default_password_is_fine_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    sasl(monkeypatch, "routing-dev")
    assert Settings().kafka_auth.password == "routing-dev"


def test_sasl_without_a_password_is_refused_naming_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        Settings()
