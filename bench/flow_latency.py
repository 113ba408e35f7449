"""Time from POST /referrals to both events (submitted, routed) being listed by the audit API,
against a running stack (`make run`). Sequential, one referral at a time: this measures the
pipeline's latency, not its throughput.

    .venv/bin/python bench/flow_latency.py [--count 50] [--referrals URL] [--audit URL]
        [--issuer URL]

Tokens come from the stack's issuer as the demo clients b81001 (referrals) and ops (audit).
The audit API is polled every 10 ms, faster than the default per-client rate limit allows:
start the stack with `RX_RATE_LIMIT_PER_SECOND=0 make run`.
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


def token(issuer: str, client_id: str, audience: str) -> str:
    response = httpx.post(
        f"{issuer}/oauth2/token",
        data={"grant_type": "client_credentials", "audience": audience},
        auth=(client_id, f"{client_id}-demo-secret"),
    )
    return str(response.raise_for_status().json()["access_token"])


def one(
    client: httpx.Client, referrals: str, audit: str, tokens: dict[str, str], timeout: float = 10
) -> float:
    started = time.perf_counter()
    headers = {
        "Authorization": f"Bearer {tokens['referrals']}",
        "X-Practitioner": "G1234567",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    rid = (
        client.post(f"{referrals}/referrals", json=BODY, headers=headers)
        .raise_for_status()
        .json()["id"]
    )
    while time.perf_counter() - started < timeout:
        entries = client.get(
            f"{audit}/audit/entries",
            params={"referral_id": rid},
            headers={"Authorization": f"Bearer {tokens['audit']}"},
        )
        if entries.status_code == 429:
            raise SystemExit("rate limited: start the stack with RX_RATE_LIMIT_PER_SECOND=0")
        if len(entries.raise_for_status().json()["items"]) >= 2:
            return time.perf_counter() - started
        time.sleep(0.01)
    raise SystemExit(f"referral {rid} not in the audit log after {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--referrals", default="http://127.0.0.1:8001")
    parser.add_argument("--audit", default="http://127.0.0.1:8003")
    parser.add_argument("--issuer", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    tokens = {
        "referrals": token(args.issuer, "b81001", "referrals"),
        "audit": token(args.issuer, "ops", "audit"),
    }
    times: list[float] = []
    with httpx.Client(timeout=10) as client:
        for i in range(args.count):
            times.append(one(client, args.referrals, args.audit, tokens))
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
