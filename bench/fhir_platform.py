"""Whole-platform cost of creating referrals over FHIR vs the JSON API: the CPU of every process
of the platform (Kafka broker, referrals API, relays and consumers, routing, audit, issuer)
per referral created and carried through routing to the provider topic and the audit log,
with the create latency and the memory of the processes.

Each round starts a fresh broker and stack (`make run`'s processes, SQLite), then for each
mode in turn (alternating which goes first) sends --count referrals from B81001 at --rate per
second (open loop: latency from each one's scheduled send time), waits until every one is
routed, lets the audit log catch up (--settle s), and reads every process's CPU time from
/proc before and after. Referrals per CPU-second = count / CPU seconds of all processes; the
load generator itself is not counted. The idle stack's CPU rate is measured first (--idle s);
"net" figures take it out of the busy window (on a saturated machine the window stretches and
idle polling would otherwise be billed to the referrals). Medians over --rounds.

    .venv/bin/python bench/fhir_platform.py [--rounds 2] [--count 600] [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import httpx
from devstack.broker import ensure_jars
from devstack.providers import Tokens

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import lift_capacities, start_stack
from machine import cpu_seconds
from referrals_post import BODY, FHIR_BODY

ROOT = Path(__file__).resolve().parent.parent
MODES = {
    "json": ("/referrals", BODY, "application/json", 201),
    "fhir": ("/fhir/R4/", FHIR_BODY, "application/fhir+json", 200),
}


def rss_mb(pid: int) -> float:
    with suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def send(base: str, mode: str, token: str, count: int, rate: float) -> list[float]:
    """``count`` creates at ``rate`` per second; latency (ms) of each from its scheduled time."""
    path, body, content_type, expected = MODES[mode]
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": content_type,
                "X-Practitioner": "G1234567",
                "Idempotency-Key": str(uuid.uuid4()),
            }
            response = await client.post(path, content=body, headers=headers)
            if response.status_code != expected:
                raise RuntimeError(f"{mode}: {response.status_code} {response.text[:300]}")
            latencies.append((time.perf_counter() - scheduled) * 1000)

        await asyncio.gather(*(one(i) for i in range(count)))
    return latencies


def unrouted(base: str, token: str) -> int:
    response = httpx.get(
        f"{base}/referrals",
        params={"view": "sent", "status": "submitted", "limit": 200},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    response.raise_for_status()
    return len(response.json()["items"])


def measure(
    stack: Any, broker: Any, tokens: Tokens, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    pids = {name: proc.pid for name, proc in stack.procs.items()}
    pids["kafka"] = broker.pid
    # The idle stack's own CPU (polling, heartbeats) over --idle s, so the busy window's share
    # of it can be told apart from the work the referrals caused.
    idle_from = (sum(cpu_seconds(pid) for pid in pids.values()), time.monotonic())
    time.sleep(args.idle)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    idle_rate = (sum(before.values()) - idle_from[0]) / (time.monotonic() - idle_from[1])
    base = stack.url("referrals")
    token = tokens.get("b81001")
    started = time.monotonic()
    latencies = asyncio.run(send(base, mode, token, args.count, args.rate))
    while unrouted(base, token) and time.monotonic() - started < 300:
        time.sleep(0.5)
    time.sleep(args.settle)
    wall = time.monotonic() - started
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    total = sum(cpu.values())
    net = total - idle_rate * wall
    return {
        "mode": mode,
        "referrals_per_cpu_second": round(args.count / total, 1),
        "cpu_ms_per_referral": round(total / args.count * 1000, 2),
        "net_cpu_ms_per_referral": round(net / args.count * 1000, 2),
        "net_referrals_per_cpu_second": round(args.count / net, 1),
        "idle_cores": round(idle_rate, 3),
        "window_s": round(wall, 1),
        "cpu_ms_per_referral_by_process": {
            name: round(seconds / args.count * 1000, 2) for name, seconds in sorted(cpu.items())
        },
        "latency_ms": {f"p{p}": round(pct(latencies, p), 1) for p in (50, 90, 99)},
        "rss_mb_all": round(sum(rss_mb(pid) for pid in pids.values())),
        "rss_mb_referrals_api": round(rss_mb(pids["referrals-api"]))
        if "referrals-api" in pids
        else None,
        "loadavg_1m": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--settle", type=float, default=3)
    parser.add_argument("--idle", type=float, default=10, help="idle CPU measured for this long")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    os.environ["RX_RATE_LIMIT_PER_SECOND"] = "0"
    # Stop the stack on SIGTERM/SIGHUP as on Ctrl-C: through the ExitStack.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    ensure_jars(progress=print)
    runs: list[dict[str, Any]] = []
    for n in range(args.rounds):
        with (
            tempfile.TemporaryDirectory(prefix="rx-fhir-", ignore_cleanup_errors=True) as tmp,
            ExitStack() as exits,
        ):
            print(f"round {n + 1}/{args.rounds}: starting broker and stack …", flush=True)
            broker, stack = start_stack(Path(tmp), exits)
            tokens = Tokens(stack.url("issuer"))
            lift_capacities(stack, tokens)
            order = ["json", "fhir"] if n % 2 == 0 else ["fhir", "json"]
            for mode in order:
                run = measure(stack, broker, tokens, mode, args)
                runs.append(run)
                print(f"round {n + 1} {mode}: {json.dumps(run)}", flush=True)
    summary = {
        mode: {
            key: statistics.median(r[key] for r in runs if r["mode"] == mode)
            for key in (
                "referrals_per_cpu_second",
                "cpu_ms_per_referral",
                "net_referrals_per_cpu_second",
                "net_cpu_ms_per_referral",
                "rss_mb_all",
            )
        }
        | {
            "p99_ms": statistics.median(r["latency_ms"]["p99"] for r in runs if r["mode"] == mode),
            "p50_ms": statistics.median(r["latency_ms"]["p50"] for r in runs if r["mode"] == mode),
        }
        for mode in MODES
    }
    print("\nmedians:", json.dumps(summary, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "fhir_platform.json"
    out.write_text(
        json.dumps(
            {"settings": vars(args) | {"out": str(args.out)}, "runs": runs, "summary": summary},
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
