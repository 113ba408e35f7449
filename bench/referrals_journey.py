"""The referrals API's own CPU per referral journey, in process: what the API does for one
journey of the load test (issue 21) without Kafka, the relays or the consumers.

A journey: the referrer's ``POST /referrals``; routing's decision recorded as the referrals
consumer records it (not timed: it is the consumer's work); the provider's
``GET /referrals/{id}`` (a read, recorded with its ReferralAccessed event); then ``accept``,
``start`` and ``complete``, each with If-Match and an Idempotency-Key. Requests go through
Starlette's TestClient to the app as the service builds it (development identity headers,
rate limits off), on a fresh SQLite file, timed with ``time.process_time`` (this process's
CPU in every thread, not wall time on a shared machine) less the client's thread's own
``time.thread_time``: the app's CPU (its event loop, in TestClient's portal thread, and the
routes in the worker threads). Both are reported. The first --warmup journeys are not timed;
every answer must be the expected one.

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV
that git revision as well; each round measures every variant once in a fresh subprocess,
alternating the order, and reports the app's CPU ms per journey and the tree's ratio to REV
(on the app's CPU). Medians
over --rounds. ``--profile`` records the tree once with py-spy instead and prints the heaviest
functions on the event loop's side of the requests and in the worker threads running the routes.

With --concurrency N the timed journeys run N at a time, one client thread each, as under
load (the app's CPU is then the process's less every client thread's).

    .venv/bin/python bench/referrals_journey.py [--journeys 300] [--rounds 5] [--ref main] \
        [--concurrency 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyspy import print_heaviest
from snapshot import ROOT, snapshot

BODY = {
    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
    "patient": {"nhs_number": "943 476 5919", "name": "Alex Smith", "postcode": "bs5 0aa"},
    "service_type": "urgent-community-response",
    "priority": "urgent",
    "cohort": {"frailty": True},
    "reason": {"code": "129839007", "text": "Fall at home"},
}
GP = {"X-Organisation": "B81001", "X-Roles": "provider", "X-Practitioner": "G1234567"}
TEAM = {"X-Organisation": "RXA01", "X-Roles": "provider", "X-Practitioner": "N7654321"}
STEPS = (
    ("accept", None, "accepted"),
    ("start", {}, "in_progress"),
    ("complete", {"outcome": "remained-at-home", "summary": "ok"}, "completed"),
)


def measure(journeys: int, warmup: int, workdir: Path, concurrency: int = 1) -> dict[str, Any]:
    """In the subprocess: ``warmup + journeys`` journeys; CPU ms per journey. With
    ``concurrency`` above 1, the timed journeys run that many at a time (one client thread
    each, sharing the app), as under load: the routes' worker threads then hand the GIL and
    the process's SQLite transaction lock between them."""
    os.environ.update(RX_ENV="development", RX_AUTH="dev-headers", RX_RATE_LIMIT_PER_SECOND="0")
    import threading
    from datetime import UTC, datetime

    import referrals
    from fastapi.testclient import TestClient
    from referrals.bootstrap import bootstrap
    from referrals.config import Settings
    from referrals.entrypoints.api.app import create_app
    from rx_contracts import ProviderType

    settings = Settings(database_url=f"sqlite:///{workdir / f'j-{uuid.uuid4().hex[:8]}.db'}")
    container = bootstrap(settings)

    def expect(response: Any, status: int) -> Any:
        if response.status_code != status:
            raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
        return response.json()

    def post(client: TestClient, path: str, who: dict[str, str], body: Any, version: int | None):
        headers = {**who, "Idempotency-Key": str(uuid.uuid4())}
        if version is not None:
            headers["If-Match"] = f'"{version}"'
        return client.post(path, json=body, headers=headers)

    def route(rid: str, n: int) -> None:
        """Routing's decision, recorded as the referrals consumer records it."""
        with container.uow() as uow:
            found = uow.referrals.get(rid)
            assert found is not None
            found.record_routing("RXA01", ProviderType.RAPID_RESPONSE, datetime.now(UTC), f"ev-{n}")
            uow.commit()

    def journey(client: TestClient, n: int) -> float:
        """One journey; returns the CPU of this thread spent on routing's step (not the
        app's)."""
        rid = expect(post(client, "/referrals", GP, BODY, None), 201)["id"]
        before = time.thread_time()
        route(rid, n)
        routing = time.thread_time() - before
        read = client.get(f"/referrals/{rid}", headers=TEAM)
        version = int(expect(read, 200)["version"])
        for action, body, status in STEPS:
            got = expect(post(client, f"/referrals/{rid}/{action}", TEAM, body, version), 200)
            if got["status"] != status or got["version"] != version + 1:
                raise RuntimeError(f"{action}: {got['status']} v{got['version']}")
            version += 1
        return routing

    spent = client_spent = 0.0
    with TestClient(create_app(settings)) as client:
        for n in range(warmup):
            journey(client, n)
        if concurrency <= 1:
            for n in range(warmup, warmup + journeys):
                started, client_started = time.process_time(), time.thread_time()
                routing = journey(client, n)
                # Routing's step ran in this thread: out of both figures.
                spent += time.process_time() - started - routing
                client_spent += time.thread_time() - client_started - routing
        else:
            client_times: list[float] = []
            failures: list[BaseException] = []
            ready = threading.Barrier(concurrency + 1)

            def worker(first: int) -> None:
                ready.wait()
                own = 0.0
                try:
                    for n in range(first, warmup + journeys, concurrency):
                        started = time.thread_time()
                        journey(client, n)
                        # Routing's step ran in this thread too: not the app's either.
                        own += time.thread_time() - started
                except BaseException as exc:  # reported once every thread is done
                    failures.append(exc)
                client_times.append(own)

            threads = [
                threading.Thread(target=worker, args=(warmup + i,)) for i in range(concurrency)
            ]
            for thread in threads:
                thread.start()
            started = time.process_time()
            ready.wait()
            for thread in threads:
                thread.join()
            spent = time.process_time() - started
            if failures:
                raise failures[0]
            client_spent = sum(client_times)
    return {
        "journeys": journeys,
        "cpu_ms_per_journey": 1e3 * spent / journeys,
        "app_cpu_ms_per_journey": 1e3 * (spent - client_spent) / journeys,
        "code": str(Path(referrals.__file__).parent),
    }


def run_variant(pythonpath: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One measurement in a fresh subprocess with ``pythonpath`` first on the path."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    command = [sys.executable, __file__, "--child", "--journeys", str(args.journeys)]
    command += ["--warmup", str(args.warmup), "--workdir", str(workdir)]
    command += ["--concurrency", str(args.concurrency)]
    raw = args.out / "referrals_journey.pyspy.txt"
    if args.profile:
        # Every thread (the routes run in Starlette's thread pool), idle ones left out.
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        command = [
            spy,
            "record",
            "--rate",
            "250",
            "--format",
            "raw",
            "-o",
            str(raw),
            "--",
            *command,
        ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    if args.profile:
        # The event loop's side (dependencies, serialising), then the routes' bodies in
        # Starlette's worker threads (their idle waits included: read past Condition.wait).
        print_heaviest(raw, top=40, within="get_request_handler")
        print_heaviest(raw, top=80, within="WorkerThread.run")
    last = [line for line in done.stdout.splitlines() if line.startswith("{")][-1]
    result: dict[str, Any] = json.loads(last)
    if not any(result["code"].startswith(path) for path in pythonpath.split(os.pathsep)):
        raise RuntimeError(f"measured {result['code']}, not the frozen copy")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journeys", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="journeys in flight at once (client threads)"
    )
    parser.add_argument("--ref", help="also measure this git revision, e.g. main")
    parser.add_argument("--profile", action="store_true", help="py-spy the tree, once")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.journeys, args.warmup, args.workdir, args.concurrency)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="referrals-journey-") as tmp:
        variants: dict[str, str] = {}
        refs = [] if args.profile or not args.ref else [(args.ref, args.ref)]
        for name, rev in [("tree", None), *refs]:
            variants[name], digest = snapshot(rev, Path(tmp) / name.replace("/", "_") / "src")
            print(f"{name}: sources frozen (digest {digest})", flush=True)
        if args.profile:
            run_variant(variants["tree"], args, Path(tmp))
            return 0
        rounds: list[dict[str, float]] = []
        whole: list[dict[str, float]] = []
        for n in range(args.rounds):
            order = list(variants) if n % 2 == 0 else list(reversed(variants))
            got = {name: run_variant(variants[name], args, Path(tmp)) for name in order}
            rounds.append({name: r["app_cpu_ms_per_journey"] for name, r in got.items()})
            whole.append({name: r["cpu_ms_per_journey"] for name, r in got.items()})
            line = "  ".join(
                f"{name} {rounds[-1][name]:.2f} ms (with the client {whole[-1][name]:.2f})"
                for name in variants
            )
            if args.ref:
                line += f"  ratio tree/{args.ref} {rounds[-1]['tree'] / rounds[-1][args.ref]:.3f}"
            print(f"round {n + 1}/{args.rounds}: {line}", flush=True)
    summary: dict[str, Any] = {
        "journeys": args.journeys,
        "median_app_cpu_ms_per_journey": {
            v: statistics.median(r[v] for r in rounds) for v in variants
        },
        "median_cpu_ms_per_journey_with_client": {
            v: statistics.median(r[v] for r in whole) for v in variants
        },
    }
    if args.ref:
        summary["median_ratio"] = statistics.median(r["tree"] / r[args.ref] for r in rounds)
    print(
        f"\nmedian app CPU ms per journey over {len(rounds)} rounds of {args.journeys:,} "
        "journeys: "
        + ", ".join(f"{v} {ms:.2f}" for v, ms in summary["median_app_cpu_ms_per_journey"].items())
        + (f"; ratio tree/{args.ref} {summary['median_ratio']:.3f}" if args.ref else "")
    )
    (args.out / "referrals_journey.json").write_text(
        json.dumps({"summary": summary, "rounds": rounds, "with_client": whole}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
