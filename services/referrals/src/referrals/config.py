"""Settings from the environment (prefix REFERRALS_; Kafka address shared by all services)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict
from rx_messaging.worker import pace_setting
from rx_web.settings import Environment, ServiceSettings

RELAY_PACE_MS = 80.0
CONSUMER_PACE_MS = 80.0


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRALS_", extra="ignore")

    database_url: str = "sqlite:///.data/referrals.db"
    port: int = 8001
    consumer_group: str = "referrals"
    max_body_bytes: int = 1_000_000
    relay_pace_ms: float = pace_setting(RELAY_PACE_MS, "relay")
    consumer_pace_ms: float = pace_setting(CONSUMER_PACE_MS, "consumer of routing decisions")
    fault_exit_after_commit: bool = Field(
        default=False,
        validation_alias="RX_FAULT_EXIT_AFTER_COMMIT",
        description="Fault injection for the reliability tests: the API process exits hard "
        "right after a POST's unit of work commits, before it answers. Development only.",
    )

    @model_validator(mode="after")
    def _faults_only_in_development(self) -> Settings:
        if self.fault_exit_after_commit and self.rx_env is not Environment.DEVELOPMENT:
            raise ValueError(
                f"RX_FAULT_EXIT_AFTER_COMMIT is refused with RX_ENV={self.rx_env.value}: "
                "it kills the API on purpose; it exists for the reliability tests"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
