"""The pipeline's health from the platform's own ``/metrics``: every process is scraped (the
same figures Prometheus collects) and summed into what the ops console shows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
from rx_telemetry.scrape import Series, parse, samples


@dataclass
class Scrape:
    target: str
    series: Series | None = None
    error: str | None = None


@dataclass
class PipelineHealth:
    targets: list[dict[str, object]] = field(default_factory=list)
    lag: list[dict[str, object]] = field(default_factory=list)
    outbox: list[dict[str, object]] = field(default_factory=list)
    dead_letters: list[dict[str, object]] = field(default_factory=list)
    sla: dict[str, float] = field(default_factory=dict)


async def scrape(targets: list[str], timeout: float = 2.0) -> list[Scrape]:
    """Every target's ``/metrics`` answer, at once; one that does not answer is reported."""

    async def one(client: httpx.AsyncClient, target: str) -> Scrape:
        try:
            response = await client.get(target)
            response.raise_for_status()
            return Scrape(target, parse(response.text))
        except (httpx.HTTPError, ValueError) as exc:
            return Scrape(target, error=str(exc)[:200] or type(exc).__name__)

    async with httpx.AsyncClient(timeout=timeout) as client:
        return list(await asyncio.gather(*(one(client, t) for t in targets)))


def summarise(scrapes: list[Scrape]) -> PipelineHealth:
    """Lag per group and partition, backlog per relay, dead letters per group and topic, SLA
    clocks by state (summed over kinds)."""
    health = PipelineHealth()
    dead: dict[tuple[str, str], float] = {}
    for s in scrapes:
        health.targets.append({"target": s.target, "up": s.series is not None, "error": s.error})
        if s.series is None:
            continue
        for labels, value in samples(s.series, "rx_consumer_lag"):
            health.lag.append({**labels, "partition": int(labels["partition"]), "lag": value})
        ages = {ls["relay"]: v for ls, v in samples(s.series, "rx_outbox_oldest_age_seconds")}
        for labels, value in samples(s.series, "rx_outbox_backlog"):
            relay = labels["relay"]
            health.outbox.append(
                {"relay": relay, "backlog": value, "oldest_age_seconds": ages.get(relay, 0.0)}
            )
        for labels, value in samples(s.series, "rx_dead_letters_total"):
            key = (labels["group"], labels["topic"])
            dead[key] = dead.get(key, 0.0) + value
        for labels, value in samples(s.series, "rx_sla_clocks"):
            health.sla[labels["state"]] = health.sla.get(labels["state"], 0.0) + value
    health.dead_letters = [
        {"group": g, "topic": t, "count": n} for (g, t), n in sorted(dead.items())
    ]
    health.lag.sort(key=lambda row: (str(row["group"]), str(row["topic"]), row["partition"]))
    health.outbox.sort(key=lambda row: str(row["relay"]))
    return health
