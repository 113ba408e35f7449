"""Settings every service process reads; each service subclasses with its env prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings


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
