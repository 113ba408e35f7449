"""Notifications on the whole platform: POST /referrals → the notification received by the
endpoint, at fixed arrival rates; fan-out of one event to many subscriptions; a long receiver
outage with nothing lost.

    .venv/bin/python bench/notify_latency.py                       # 10 and 20/s, 1,000-way fan-out, 90 s outage
    .venv/bin/python bench/notify_latency.py --rates 10 --duration 20 --fanout 200 --outage 20

Starts its own broker and stack (every process of `make run`, SQLite, rate limits off) and
webhook receivers on loopback. Referrals are sent open loop by the GP practice B81001 (each at
its scheduled time; latency counts from then, so a stalled API cannot hide its queue); its
`referrals-sent` webhook records when each referral's `submitted` and `routed` notifications
arrive. Fan-out: L81001 holds N subscriptions; one referral of its own, and the time until
every one of them received its `submitted`. Outage: the receiver of L81002's subscription is
down for `--outage` seconds while referrals keep coming; then the time to catch up, and whether
every number 1..N arrived. Prints a summary and writes `results/notify_latency.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from devstack.broker import Broker, ensure_jars
from devstack.ports import free_ports
from devstack.providers import Tokens
from devstack.receiver import Delivery, Receiver
from devstack.stack import DEFAULT_PORTS, Stack
from devstack.topics import ensure_topics
from rx_contracts.topics import all_topics

BODY = {
    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
    "patient": {"postcode": "BS5 0AA"},
    "service_type": "urgent-community-response",
    "priority": "urgent",
}
RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p99_ms": round(percentile(values, 99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "mean_ms": round(statistics.fmean(values) * 1000, 1),
    }


class Bench:
    def __init__(self, stack: Stack, tokens: Tokens) -> None:
        self.stack = stack
        self.tokens = tokens

    def headers(self, client: str, service: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.get(client, service)}", **extra}

    async def subscribe_many(self, client: str, receiver: Receiver, count: int) -> None:
        """``count`` subscriptions, 16 requests at a time."""
        gate = asyncio.Semaphore(16)
        body = {"topic": "referrals-sent", "endpoint": receiver.url, "content": "id-only"}
        headers = self.headers(client, "notify")
        async with httpx.AsyncClient(timeout=60) as http:

            async def one() -> None:
                async with gate:
                    answer = await http.post(
                        f"{self.stack.url('notify')}/subscriptions",
                        json=body,
                        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                    )
                    answer.raise_for_status()

            await asyncio.gather(*(one() for _ in range(count)))

    def subscribe(self, client: str, receiver: Receiver) -> dict[str, Any]:
        response = httpx.post(
            f"{self.stack.url('notify')}/subscriptions",
            json={"topic": "referrals-sent", "endpoint": receiver.url, "content": "id-only"},
            headers=self.headers(client, "notify", **{"Idempotency-Key": str(uuid.uuid4())}),
            timeout=30,
        )
        response.raise_for_status()
        return dict(response.json())

    async def send(self, client: str, rate: float, duration: float) -> dict[str, float]:
        """Open loop: referral i is due at start + i/rate; returns referral id → due time."""
        body = {**BODY, "referrer": {"organisation": client.upper()}}
        due: dict[str, float] = {}
        start = time.monotonic() + 0.5
        count = int(rate * duration)
        async with httpx.AsyncClient(timeout=30) as http:

            async def one(i: int) -> None:
                at = start + i / rate
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                headers = self.headers(
                    client, "referrals", **{"Idempotency-Key": str(uuid.uuid4())}
                )
                answer = await http.post(
                    f"{self.stack.url('referrals')}/referrals", json=body, headers=headers
                )
                answer.raise_for_status()
                due[answer.json()["id"]] = at

            await asyncio.gather(*(one(i) for i in range(count)))
        return due

    def backlog_zero(self, client: str, subscription_id: str) -> dict[str, Any]:
        return dict(
            httpx.get(
                f"{self.stack.url('notify')}/subscriptions/{subscription_id}",
                headers=self.headers(client, "notify"),
                timeout=30,
            ).json()["health"]
        )


def arrivals(receiver: Receiver, *events: str) -> dict[str, float]:
    """Referral id → when its first notification of one of ``events`` arrived."""
    found: dict[str, float] = {}
    for delivery in receiver.unique(lambda d: d.headers["webhook-id"]):
        body = delivery.json()
        if body.get("event") in events:
            found.setdefault(body["subject"], delivery.at)
    return found


def wait(condition: Any, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def latency(bench: Bench, rate: float, duration: float) -> dict[str, Any]:
    receiver = Receiver().start()
    try:
        bench.subscribe("b81001", receiver)
        load = os.getloadavg()[0]
        due = asyncio.run(bench.send("b81001", rate, duration))
        decided = ("routed", "unroutable")  # an organisation at capacity leaves some unroutable
        wait(lambda: len(arrivals(receiver, *decided)) >= len(due), timeout=120)
        submitted, routed = arrivals(receiver, "submitted"), arrivals(receiver, *decided)
        return {
            "rate": rate,
            "referrals": len(due),
            "load_average_before": load,
            "load_average_after": os.getloadavg()[0],
            "post_to_submitted": summary(
                [submitted[r] - t for r, t in due.items() if r in submitted]
            ),
            "post_to_routing_decision": summary(
                [routed[r] - t for r, t in due.items() if r in routed]
            ),
            "missing": len(due) - len(routed),
        }
    finally:
        receiver.stop()


def fanout(bench: Bench, count: int) -> dict[str, Any]:
    receiver = Receiver().start()
    try:
        made = time.monotonic()
        asyncio.run(bench.subscribe_many("l81001", receiver, count))
        subscribing = time.monotonic() - made
        due = asyncio.run(bench.send("l81001", 1, 1))
        [(rid, sent)] = due.items()

        def delivered() -> list[Delivery]:
            return [
                d
                for d in receiver.received()
                if d.json().get("event") == "submitted" and d.json()["subject"] == rid
            ]

        wait(lambda: len(delivered()) >= count, timeout=600)
        times = sorted(d.at - sent for d in delivered())
        return {
            "subscriptions": count,
            "creating_them_s": round(subscribing, 1),
            "delivered": len(times),
            "first_ms": round(times[0] * 1000, 1) if times else None,
            "p50_ms": round(percentile(times, 50) * 1000, 1) if times else None,
            "p99_ms": round(percentile(times, 99) * 1000, 1) if times else None,
            "last_ms": round(times[-1] * 1000, 1) if times else None,
        }
    finally:
        receiver.stop()


def outage(bench: Bench, seconds: float, rate: float) -> dict[str, Any]:
    receiver = Receiver().start()
    try:
        subscription = bench.subscribe("l81002", receiver)
        receiver.stop()
        down = time.monotonic()
        due = asyncio.run(bench.send("l81002", rate, seconds))
        wait(lambda: time.monotonic() - down >= seconds, timeout=seconds + 5)
        receiver.start()
        up = time.monotonic()
        caught_up = wait(
            lambda: (
                bench.backlog_zero("l81002", subscription["id"])["backlog"] == 0
                and bench.backlog_zero("l81002", subscription["id"])["events_since_start"] > 0
            ),
            timeout=600,
        )
        took = time.monotonic() - up
        health = bench.backlog_zero("l81002", subscription["id"])
        numbers = [
            d.json()["eventnumber"] for d in receiver.unique(lambda d: d.headers["webhook-id"])
        ]
        expected = list(range(1, health["events_since_start"] + 1))
        return {
            "outage_s": seconds,
            "referrals_during": len(due),
            "events_numbered": health["events_since_start"],
            "received_distinct": len(set(numbers)),
            "all_received_in_order": numbers == expected,
            "caught_up": caught_up,
            "catch_up_s": round(took, 1),
            "lost": len(set(expected) - set(numbers)),
        }
    finally:
        receiver.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="*", default=[10, 20])
    parser.add_argument("--duration", type=float, default=30, help="seconds of load per rate")
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--outage", type=float, default=90)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    ensure_jars(progress=print)
    os.environ["RX_RATE_LIMIT_PER_SECOND"] = "0"
    work = Path(tempfile.mkdtemp(prefix="rx-notify-bench-"))
    kafka_port, controller_port, *ports = free_ports(2 + len(DEFAULT_PORTS))
    broker = Broker(work / "kafka", port=kafka_port, controller_port=controller_port, heap="512m")
    broker.start()
    stack = Stack(
        work / "stack", broker.bootstrap_servers, ports=dict(zip(DEFAULT_PORTS, ports, strict=True))
    )
    results: dict[str, Any] = {"machine_cores": os.cpu_count()}
    try:
        ensure_topics(broker.bootstrap_servers, all_topics())
        stack.start(timeout=120)
        bench = Bench(stack, Tokens(stack.url("issuer")))
        asyncio.run(bench.send("b81001", 2, 3))  # warm up every process
        results["latency"] = [latency(bench, rate, args.duration) for rate in args.rates]
        for row in results["latency"]:
            print(json.dumps(row), flush=True)
        if args.fanout:
            results["fanout"] = fanout(bench, args.fanout)
            print(json.dumps(results["fanout"]), flush=True)
        if args.outage:
            results["outage"] = outage(bench, args.outage, 5)
            print(json.dumps(results["outage"]), flush=True)
    finally:
        stack.stop()
        broker.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "notify_latency.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
