"""Settings from the environment (prefix ROUTING_; Kafka address shared by all services)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTING_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///.data/routing.db",
        description="SQLAlchemy URL of this service's own database (PostgreSQL or SQLite).",
    )
    host: str = "127.0.0.1"
    port: int = 8002
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("ROUTING_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    consumer_group: str = "routing"
    heartbeat_dir: Path = Path(".data/heartbeats")


@lru_cache
def get_settings() -> Settings:
    return Settings()
