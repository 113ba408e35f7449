"""Time from POST /referrals to both events (submitted, routed) being listed by the audit API,
against a running stack (`make run`). Sequential, one referral at a time: this measures the
pipeline's latency, not its throughput.

    .venv/bin/python bench/flow_latency.py [--count 50] [--referrals URL] [--audit URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid

import httpx

BODY = {
    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
    "patient": {"nhs_number": "9434765919", "postcode": "BS5 0AA"},
    "service_type": "urgent-community-response",
    "priority": "urgent",
}

HEADERS = {"X-Organisation": "B81001", "X-Roles": "provider", "X-Practitioner": "G1234567"}
OPS = {"X-Organisation": "OPS01", "X-Roles": "ops"}  # the audit API is for ops only


def one(client: httpx.Client, referrals: str, audit: str, timeout: float = 10) -> float:
    started = time.perf_counter()
    headers = {**HEADERS, "Idempotency-Key": str(uuid.uuid4())}
    rid = (
        client.post(f"{referrals}/referrals", json=BODY, headers=headers)
        .raise_for_status()
        .json()["id"]
    )
    while time.perf_counter() - started < timeout:
        page = client.get(f"{audit}/audit/entries", params={"referral_id": rid}, headers=OPS)
        if len(page.json()["items"]) >= 2:
            return time.perf_counter() - started
        time.sleep(0.01)
    raise SystemExit(f"referral {rid} not in the audit log after {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--referrals", default="http://127.0.0.1:8001")
    parser.add_argument("--audit", default="http://127.0.0.1:8003")
    args = parser.parse_args()
    times: list[float] = []
    with httpx.Client(timeout=10) as client:
        for i in range(args.count):
            times.append(one(client, args.referrals, args.audit))
            print(
                f"\r{i + 1}/{args.count} referrals  last {times[-1] * 1000:.0f} ms",
                end="",
                flush=True,
            )
    print()
    q = statistics.quantiles(times, n=10)
    print(
        f"POST -> audit (both events), n={len(times)}: median {statistics.median(times) * 1000:.0f} ms, "
        f"p90 {q[8] * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
