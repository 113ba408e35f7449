"""Settings every service process reads; each service subclasses with its env prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings
from rx_messaging.kafka_auth import KafkaAuth

DEVELOPMENT = "development"


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
    environment: str = Field(
        default=DEVELOPMENT,
        validation_alias="RX_ENV",
        description="Deployment stage; anything but 'development' refuses default secrets.",
    )
    # The Kafka security settings are shared like the bootstrap servers (no prefix); each
    # process gets its own service's principal. See rx_messaging.kafka_auth.
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
    def _refuse_unusable_or_default_kafka_secrets(self) -> ServiceSettings:
        auth = self.kafka_auth  # raises KafkaAuthError (a ValueError) when incomplete
        if self.environment != DEVELOPMENT and auth.has_default_password():
            raise ValueError(
                f"KAFKA_SASL_PASSWORD of {auth.username!r} is a well-known default; "
                f"RX_ENV={self.environment!r} needs a real secret (defaults are for "
                f"RX_ENV={DEVELOPMENT} only)"
            )
        return self
