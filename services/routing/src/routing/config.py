"""Settings from the environment (prefix ROUTING_; Kafka address shared by all services)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from rx_messaging.worker import pace_setting
from rx_web.settings import ServiceSettings

RELAY_PACE_MS = 80.0
CONSUMER_PACE_MS = 80.0


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTING_", extra="ignore")

    database_url: str = "sqlite:///.data/routing.db"
    port: int = 8002
    consumer_group: str = "routing"
    relay_pace_ms: float = pace_setting(RELAY_PACE_MS, "relay")
    consumer_pace_ms: float = pace_setting(CONSUMER_PACE_MS, "consumer of referral events")
    clock_max_sleep_seconds: float = Field(
        default=0.5,
        gt=0,
        description="Longest the clock worker sleeps before looking for new or due clocks "
        "where commits cannot wake it (a second clock worker on one SQLite file, another OS); "
        "it wakes earlier for the next known deadline.",
    )
    clock_batch: int = Field(default=200, ge=1, description="Clocks fired per transaction.")


@lru_cache
def get_settings() -> Settings:
    return Settings()
