"""Settings from the environment (prefix AUDIT_; Kafka address shared by all services)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EVERY_V1_TOPIC = r"^[a-z0-9-]+\.[a-z0-9-]+\.v[0-9]+$"
"""Every ``<owner>.<stream>.v<N>`` topic, so new ones are picked up; not the ``.dlq`` ones."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///.data/audit.db",
        description="SQLAlchemy URL of this service's own database (PostgreSQL or SQLite).",
    )
    host: str = "127.0.0.1"
    port: int = 8003
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("AUDIT_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    consumer_group: str = "audit"
    topic_pattern: str = EVERY_V1_TOPIC
    heartbeat_dir: Path = Path(".data/heartbeats")


@lru_cache
def get_settings() -> Settings:
    return Settings()
