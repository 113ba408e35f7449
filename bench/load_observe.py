"""What bench/load.py watches while the load runs: consumer lag per group, and when each
referral's ReferralRouted reaches the audit log (the audit service's live stream)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable

import httpx
import sqlalchemy
from kafka import KafkaAdminClient, KafkaConsumer

ROUTED = "rx.routing.ReferralRouted.v1"


class LagSampler:
    """Every ``every`` seconds: records not yet committed by each consumer group, summed over
    the partitions it has committed on (the group's backlog)."""

    def __init__(self, bootstrap_servers: str, groups: Iterable[str], every: float = 1.0) -> None:
        self.bootstrap = bootstrap_servers.split(",")
        self.groups = list(groups)
        self.every = every
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.committed: list[tuple[float, int]] = []
        """Per sample: the records every group has committed, summed (how fast they consume)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def latest(self) -> dict[str, int]:
        return self.samples[-1][1] if self.samples else {}

    def _run(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        ends = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        try:
            while not self._stop.wait(self.every):
                try:
                    lags, done = self._sample(admin, ends)
                    now = time.monotonic()
                    self.samples.append((now, lags))
                    self.committed.append((now, done))
                except Exception:  # kafka-python raises KeyError on stale metadata, too
                    continue  # a sample missed is a gap in the chart, not a failed run
        finally:
            ends.close()
            admin.close()

    def _sample(self, admin: KafkaAdminClient, ends: KafkaConsumer) -> tuple[dict[str, int], int]:
        lags: dict[str, int] = {}
        done = 0
        offsets = admin.list_group_offsets({group: None for group in self.groups})
        for group in self.groups:
            committed = offsets.get(group) or {}
            end = ends.end_offsets(list(committed)) if committed else {}
            lags[group] = sum(max(0, end[tp] - meta.offset) for tp, meta in committed.items())
            done += sum(meta.offset for meta in committed.values())
        return lags, done

    def consumed_per_second(self, since: float, until: float) -> float:
        """Records committed per second by all the groups together, over the samples between
        ``since`` and ``until``."""
        window = [(t, n) for t, n in self.committed if since <= t <= until]
        if len(window) < 2 or window[-1][0] <= window[0][0]:
            return 0.0
        return (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])


class AuditWatcher:
    """Follows ``GET /audit/stream`` for ReferralRouted entries; ``seen[referral_id]`` is the
    ``time.monotonic()`` the first one for that referral arrived."""

    def __init__(self, audit_url: str, token: str) -> None:
        self.url = f"{audit_url}/audit/stream"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, timeout: float = 30) -> None:
        self._thread.start()
        if not self._connected.wait(timeout):
            raise RuntimeError("the audit stream did not answer")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            headers = {**self.headers, **({"Last-Event-ID": last} if last else {})}
            try:
                with httpx.stream(
                    "GET", self.url, params={"type": ROUTED}, headers=headers, timeout=30
                ) as response:
                    self._connected.set()
                    for line in response.iter_lines():
                        if self._stop.is_set():
                            return
                        if line.startswith("id:"):
                            last = line[3:].strip()
                        elif line.startswith("data:"):
                            entry = json.loads(line[5:])
                            self.seen.setdefault(entry["referral_id"], time.monotonic())
            except httpx.HTTPError:
                self._stop.wait(0.5)  # reconnect, from the last entry seen


def relay_cycles(databases: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per service's outbox: rows published, relay cycles that published them and records per
    cycle. A relay marks every row of one cycle with the same ``sent_at``, so the cycles are
    the distinct ``sent_at`` values (the same in older revisions: measured on both sides)."""
    figures: dict[str, dict[str, float]] = {}
    for service, url in databases.items():
        if not url:
            continue
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as conn:
                sizes = [
                    n
                    for (n,) in conn.execute(
                        sqlalchemy.text(
                            "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL GROUP BY sent_at"
                        )
                    )
                ]
        except sqlalchemy.exc.DBAPIError:
            continue  # no outbox in this service's database
        finally:
            engine.dispose()
        if sizes:
            sizes.sort()
            figures[service] = {
                "records": sum(sizes),
                "cycles": len(sizes),
                "records_per_cycle": sum(sizes) / len(sizes),
                "median_per_cycle": sizes[len(sizes) // 2],
                "max_per_cycle": sizes[-1],
                "single_record_cycles": sum(1 for n in sizes if n == 1) / len(sizes),
            }
    return figures


def batch_sizes(metrics_urls: Iterable[str]) -> dict[str, dict[str, float]]:
    """Records per relay cycle and per consumer batch from the workers' own histograms
    (``rx_outbox_batch_records``, ``rx_consumer_batch_records``; revisions without them give
    nothing): per relay or group, how many batches and their mean size."""
    sums: dict[str, dict[str, float]] = {}
    for url in metrics_urls:
        try:
            body = httpx.get(f"{url}/metrics", timeout=10).text
        except httpx.HTTPError:
            continue
        for line in body.splitlines():
            for family in ("rx_outbox_batch_records", "rx_consumer_batch_records"):
                for part in ("_sum", "_count"):
                    if line.startswith(family + part + "{"):
                        name = line.split('"')[1]
                        sums.setdefault(name, {})[part[1:]] = float(line.rsplit(" ", 1)[1])
    return {
        name: {"batches": f["count"], "records_per_batch": f["sum"] / f["count"]}
        for name, f in sums.items()
        if f.get("count")
    }
