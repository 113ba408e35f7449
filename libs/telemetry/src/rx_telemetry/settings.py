"""The telemetry settings every process reads (``RX_*``), built once per process."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class TelemetrySettings(BaseSettings):
    """Each switch can be turned off on its own (the cost benchmark turns all three off)."""

    model_config = SettingsConfigDict(env_prefix="RX_", extra="ignore")

    metrics: bool = True
    """Count and time requests and events, and serve them at ``/metrics``."""
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    """Where a worker process serves ``/metrics``, ``/health`` and ``/ready`` (APIs serve
    them on their own port); none: the worker serves nothing."""
    log_format: Literal["json", "text"] = "json"
    tracing: bool = True
    """OpenTelemetry spans for requests and events; exported only if an OTLP endpoint is
    set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``RX_OTLP_ENDPOINT``)."""
    otlp_endpoint: str | None = None


@lru_cache
def telemetry_settings() -> TelemetrySettings:
    return TelemetrySettings()
