"""The platform's Prometheus series, and their exposition.

Counters and histograms are updated where things happen (per request, per batch, per event:
one ``inc``/``observe`` each). Figures that live in a database or a Kafka client (outbox
backlog, SLA clocks, consumer lag, connection pools) are read when ``/metrics`` is scraped
(:class:`Probe`), so they cost nothing between scrapes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (several processes behind one port, e.g. uvicorn
workers) the counters of every process are summed from that directory (prometheus-client's
multiprocess mode); the probes answer for the scraping process."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUESTS = Counter(
    "rx_http_requests",
    "HTTP requests answered, by route template and status code.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "rx_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["service", "method", "route"],
    buckets=_LATENCY_BUCKETS,
)
_BATCH_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500)
OUTBOX_PUBLISHED = Counter(
    "rx_outbox_published", "Outbox rows published to Kafka by a relay.", ["relay"]
)
OUTBOX_BATCH_RECORDS = Histogram(
    "rx_outbox_batch_records",
    "Outbox rows a relay published in one cycle (one acknowledged send), cycles with any.",
    ["relay"],
    buckets=_BATCH_BUCKETS,
)
CONSUMER_EVENTS = Counter(
    "rx_consumer_events",
    "Records a consumer group settled: applied, duplicate (already applied) or dead_lettered.",
    ["group", "outcome"],
)
CONSUMER_BATCH_RECORDS = Histogram(
    "rx_consumer_batch_records",
    "Records a consumer group settled in one poll batch (one transaction, one offset commit).",
    ["group"],
    buckets=_BATCH_BUCKETS,
)
CONSUMER_EVENT_SECONDS = Histogram(
    "rx_consumer_event_duration_seconds",
    "Time a consumer's handler spent applying one event, by event type.",
    ["group", "event_type"],
    buckets=_LATENCY_BUCKETS,
)
DEAD_LETTERS = Counter(
    "rx_dead_letters",
    "Records a consumer group parked on a dead-letter topic, by the topic they came from.",
    ["group", "topic"],
)

Sample = Mapping[tuple[str, ...], float]


class Probes(Collector):
    """Gauge families whose samples are read when scraped. Each family may have several
    readers (one per relay, per engine…), each under a key: adding a reader again under the
    same key replaces it. A failing read (database down) leaves its samples out of that
    scrape, logged at DEBUG."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, list[str], dict[str, Callable[[], Sample]]]] = {}
        self._lock = threading.Lock()

    def add(
        self,
        name: str,
        documentation: str,
        labels: Iterable[str],
        read: Callable[[], Sample],
        key: str,
    ) -> None:
        with self._lock:
            family = self._families.setdefault(name, (documentation, list(labels), {}))
            family[2][key] = read

    def remove(self, key: str) -> None:
        with self._lock:
            for _, _, readers in self._families.values():
                readers.pop(key, None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            families = [(n, d, ls, list(r.items())) for n, (d, ls, r) in self._families.items()]
        for name, documentation, labels, readers in families:
            family = GaugeMetricFamily(name, documentation, labels=labels)
            for key, read in readers:
                try:
                    samples = read()
                except Exception as exc:
                    log.debug("metrics probe %s (%s) failed: %s", name, key, exc)
                    continue
                for values, value in samples.items():
                    family.add_metric(list(values), value)
            yield family


PROBES = Probes()
"""Scrape-time probes of this process (never shared between processes)."""
_PROBE_REGISTRY = CollectorRegistry(auto_describe=False)
_PROBE_REGISTRY.register(PROBES)


def add_probe(
    name: str, documentation: str, labels: Iterable[str], read: Callable[[], Sample], key: str
) -> None:
    """Read ``name``'s samples with ``read`` at each scrape (replacing ``key``'s reader)."""
    PROBES.add(name, documentation, labels, read, key)


def render() -> tuple[bytes, str]:
    """The body and content type of a ``/metrics`` answer."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        counters = generate_latest(registry)
    else:
        counters = generate_latest(REGISTRY)
    return counters + generate_latest(_PROBE_REGISTRY), CONTENT_TYPE_LATEST
