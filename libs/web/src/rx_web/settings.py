"""Settings every service process reads; each service subclasses with its env prefix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings
from rx_config.kafka_auth import KafkaAuth
from sqlalchemy.engine import make_url


class Environment(StrEnum):
    """``RX_ENV``: where a process runs. Outside development, shipped default secrets and the
    development identity headers are refused."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


KNOWN_DEFAULT_SECRETS: set[str] = {
    # docker-compose.yml's database passwords
    "referrals-dev",
    "routing-dev",
    "audit-dev",
    "notify-dev",
    "portal-dev",
    "postgres-dev",
}
"""Secrets this repository ships for development. Add a new default here when you add one, so
a production process that still uses it refuses to start. (Kafka's shipped and well-known
passwords are recognised by ``KafkaAuth.has_default_password``.)"""


class DefaultSecretError(ValueError):
    """A process outside development was given a secret this repository ships."""


def refuse_default_secrets(
    environment: Environment,
    secrets: Mapping[str, str | SecretStr | None],
    defaults: Iterable[str] = (),
) -> None:
    """Raise naming each setting in ``secrets`` whose value is a shipped default (one of
    ``KNOWN_DEFAULT_SECRETS`` or ``defaults``), unless ``environment`` is development."""
    if environment is Environment.DEVELOPMENT:
        return
    known = KNOWN_DEFAULT_SECRETS | set(defaults)
    plain = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in secrets.items()
    }
    found = sorted(name for name, value in plain.items() if value and value in known)
    if found:
        raise DefaultSecretError(
            f"RX_ENV={environment.value} refuses the development default secrets in "
            f"{', '.join(found)}: set your own"
        )


class ServiceSettings(BaseSettings):
    """Subclass with ``model_config = SettingsConfigDict(env_prefix="<SERVICE>_")`` and set the
    service's defaults for ``database_url``, ``port`` and ``consumer_group``."""

    database_url: str = Field(description="SQLAlchemy URL of the service's own database.")
    host: str = "127.0.0.1"
    port: int
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="Shared by every service, so it has no prefix.",
    )
    consumer_group: str
    heartbeat_dir: Path = Path(".data/heartbeats")
    rx_env: Environment = Field(
        default=Environment.PRODUCTION,
        validation_alias="RX_ENV",
        description="Shared by every process; development allows shipped default secrets.",
    )
    # The Kafka security settings are shared like the bootstrap servers (no prefix); each
    # process gets its own service's principal. See rx_config.kafka_auth.
    kafka_security_protocol: str = Field(
        default="PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: str = Field(
        default="SCRAM-SHA-512", validation_alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str | None = Field(default=None, validation_alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, validation_alias="KAFKA_SASL_PASSWORD"
    )

    @property
    def kafka_auth(self) -> KafkaAuth:
        """What every Kafka client of the process authenticates with."""
        password = self.kafka_sasl_password
        return KafkaAuth(
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=password.get_secret_value() if password is not None else None,
        )

    @model_validator(mode="after")
    def _no_default_secrets(self) -> ServiceSettings:
        # The database password, and every setting whose name says it holds a secret.
        secrets: dict[str, str | SecretStr | None] = {
            "database_url": make_url(self.database_url).password
        }
        for name in type(self).model_fields:
            if any(word in name for word in ("password", "secret")):
                secrets[name] = getattr(self, name)
        refuse_default_secrets(self.rx_env, secrets)
        auth = self.kafka_auth  # raises KafkaAuthError (a ValueError) when incomplete
        if self.rx_env is not Environment.DEVELOPMENT and auth.has_default_password():
            raise ValueError(
                f"KAFKA_SASL_PASSWORD of {auth.username!r} is a well-known default; "
                f"RX_ENV={self.rx_env.value} needs a real secret (defaults are for "
                f"RX_ENV={Environment.DEVELOPMENT.value} only)"
            )
        return self
