"""The referrals API's CPU per referral journey as it runs: ``python -m referrals api`` under
uvicorn, driven over loopback HTTP from this process (issue 21).

The journey is ``bench/referrals_journey.py``'s (``POST /referrals``; routing's decision
recorded here on the same SQLite file, as the referrals consumer records it; the provider's
``GET``; ``accept``, ``start``, ``complete``), with --concurrency journeys in flight. What is
measured is the server process's CPU (user + system, from ``/proc/<pid>/stat``) over the
timed journeys, divided by their number: uvicorn, the middleware, FastAPI and the routes, its
worker threads included. Every answer must be the expected one.

--tokens sends what ``bench/load.py``'s callers send in the whole stack: bearer tokens of the
demo clients from an issuer started for the run (``python -m issuer api``), X-Practitioner, and
the per-client rate limit on (its limit raised: this driver has one referrer and one provider
where the stack has 3 and 10), where the default is the development scheme's identity headers
and no limit. --reads N makes the provider read the referral N times before
accepting (a provider polls until the referrals service shows it assigned). --rate R starts the
journeys at R a second (--concurrency must be enough to keep up) instead of back to back, so
the server waits between requests as it does in the stack.

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV
that revision as well; each round starts a fresh server on a fresh database per variant,
alternating the order, and reports each variant's CPU ms per journey and the tree's ratio
to REV. Medians over --rounds.

    .venv/bin/python bench/referrals_journey_server.py [--journeys 300] [--rounds 5] \\
        [--concurrency 1] [--ref main] [--tokens] [--reads 1] [--rate 40]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyspy import print_heaviest
from referrals_journey import BODY, GP, STEPS, TEAM
from snapshot import ROOT, snapshot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """In the subprocess (the variant's code first on the path): start the server, run the
    journeys, return the server's CPU ms per journey."""
    os.environ.update(RX_ENV="development")
    if args.tokens:
        # Counted per client as in the stack, but high enough that this driver's one referrer
        # and one provider (the stack has 3 and 10) are never refused.
        os.environ.update(RX_RATE_LIMIT_PER_SECOND="100000")
    else:
        os.environ.update(RX_AUTH="dev-headers", RX_RATE_LIMIT_PER_SECOND="0")
    from datetime import UTC, datetime

    import httpx
    import referrals
    from referrals.bootstrap import bootstrap
    from referrals.config import Settings
    from rx_contracts import ProviderType

    url = f"sqlite:///{args.workdir / f's-{uuid.uuid4().hex[:8]}.db'}"
    port = _free_port()
    env = {
        **os.environ,
        "REFERRALS_DATABASE_URL": url,
        "REFERRALS_HOST": "127.0.0.1",
        "REFERRALS_PORT": str(port),
        "RX_LOG_FORMAT": os.environ.get("RX_LOG_FORMAT", "json"),
    }
    issuer = None
    gp, team = dict(GP), dict(TEAM)
    if args.tokens:
        issuer_port = _free_port()
        issuer_url = f"http://127.0.0.1:{issuer_port}"
        issuer = subprocess.Popen(
            [sys.executable, "-m", "issuer", "api"],
            env={
                **os.environ,
                "ISSUER_PORT": str(issuer_port),
                "ISSUER_HOST": "127.0.0.1",
                "ISSUER_URL": issuer_url,
                "ISSUER_KEYS_FILE": str(args.workdir / f"keys-{uuid.uuid4().hex[:8]}.json"),
            },
            stderr=subprocess.DEVNULL,
        )
        env["RX_TOKEN_ISSUER"] = issuer_url
    server = subprocess.Popen(
        [sys.executable, "-m", "referrals", "api"], env=env, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        if issuer is not None:
            gp, team = _token_headers(issuer_url)
        container = bootstrap(Settings(database_url=url))

        def journey(client: httpx.Client, n: int) -> None:
            key = {"Idempotency-Key": str(uuid.uuid4())}
            created = client.post("/referrals", json=BODY, headers={**gp, **key})
            if created.status_code != 201:
                raise RuntimeError(f"POST /referrals: {created.status_code} {created.text}")
            rid = created.json()["id"]
            with container.uow() as uow:
                found = uow.referrals.get(rid)
                assert found is not None
                found.record_routing(
                    "RXA01", ProviderType.RAPID_RESPONSE, datetime.now(UTC), f"ev-{n}"
                )
                uow.commit()
            for _ in range(args.reads):
                read = client.get(f"/referrals/{rid}", headers=team)
                if read.status_code != 200:
                    raise RuntimeError(f"GET: {read.status_code} {read.text}")
            version = int(read.json()["version"])
            for action, body, status in STEPS:
                headers = {**team, "Idempotency-Key": str(uuid.uuid4())}
                headers["If-Match"] = f'"{version}"'
                got = client.post(f"/referrals/{rid}/{action}", json=body, headers=headers)
                if got.status_code != 200 or got.json()["status"] != status:
                    raise RuntimeError(f"{action}: {got.status_code} {got.text}")
                version += 1

        with httpx.Client(base_url=base) as client:
            for n in range(args.warmup):
                journey(client, n)
        failures: list[BaseException] = []

        paced_from = [0.0]  # when the timed journeys start, for --rate

        def worker(first: int) -> None:
            try:
                with httpx.Client(base_url=base) as client:
                    for n in range(first, args.warmup + args.journeys, args.concurrency):
                        if args.rate:
                            due = paced_from[0] + (n - args.warmup) / args.rate
                            time.sleep(max(0.0, due - time.perf_counter()))
                        journey(client, n)
            except BaseException as exc:  # reported once every thread is done
                failures.append(exc)

        threads = [
            threading.Thread(target=worker, args=(args.warmup + i,))
            for i in range(args.concurrency)
        ]
        spy = None
        if args.profile:
            # Every thread's on-CPU samples over the timed journeys, as collapsed stacks.
            command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid"]
            command += [str(server.pid), "--format", "raw", "--rate", "250", "--output"]
            spy = subprocess.Popen([*command, str(args.profile)], stdout=subprocess.DEVNULL)
            time.sleep(1)
        before, started = _cpu_seconds(server.pid), time.perf_counter()
        paced_from[0] = started
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        spent, wall = _cpu_seconds(server.pid) - before, time.perf_counter() - started
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        if failures:
            raise failures[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
        if issuer is not None:
            issuer.terminate()
            issuer.wait(timeout=30)
    return {
        "server_cpu_ms_per_journey": 1e3 * spent / args.journeys,
        "journeys_per_s": args.journeys / wall,
        "code": str(Path(referrals.__file__).parent),
    }


def _token_headers(issuer_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """The referrer's and the provider's headers with bearer tokens of the demo clients, as
    ``devstack.load`` sends them."""
    import httpx

    for _ in range(600):
        try:
            if httpx.get(f"{issuer_url}/.well-known/jwks.json").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)

    def headers(client_id: str, practitioner: str) -> dict[str, str]:
        response = httpx.post(
            f"{issuer_url}/oauth2/token",
            data={"grant_type": "client_credentials", "audience": "referrals"},
            auth=(client_id, f"{client_id}-demo-secret"),
            timeout=10,
        )
        response.raise_for_status()
        token = response.json()["access_token"]
        return {"Authorization": f"Bearer {token}", "X-Practitioner": practitioner}

    return headers("b81001", GP["X-Practitioner"]), headers("rxa01", TEAM["X-Practitioner"])


def run_variant(pythonpath: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    command = [sys.executable, __file__, "--child", "--journeys", str(args.journeys)]
    command += ["--warmup", str(args.warmup), "--workdir", str(workdir)]
    command += ["--concurrency", str(args.concurrency), "--reads", str(args.reads)]
    command += ["--tokens"] if args.tokens else []
    command += ["--rate", str(args.rate)] if args.rate else []
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not any(result["code"].startswith(path) for path in pythonpath.split(os.pathsep)):
        raise RuntimeError(f"measured {result['code']}, not the frozen copy")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journeys", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1, help="journeys in flight at once")
    parser.add_argument("--ref", help="also measure this git revision, e.g. main")
    parser.add_argument(
        "--tokens",
        action="store_true",
        help="bearer tokens from an issuer started for the run, and the default rate limit",
    )
    parser.add_argument("--reads", type=int, default=1, help="the provider's GETs per journey")
    parser.add_argument(
        "--rate",
        type=float,
        help="journeys started per second (open loop, as the stack's load), not back to back",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the working tree once under py-spy, collapsed stacks into this file",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return 0
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="referrals-server-") as tmp:
            args.workdir = Path(tmp)
            print(json.dumps(measure(args)))
        print_heaviest(args.profile)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="referrals-server-") as tmp:
        variants: dict[str, str] = {}
        for name, rev in [("tree", None), *([(args.ref, args.ref)] if args.ref else [])]:
            variants[name], digest = snapshot(rev, Path(tmp) / name.replace("/", "_") / "src")
            print(f"{name}: sources frozen (digest {digest})", flush=True)
        rounds: list[dict[str, float]] = []
        for n in range(args.rounds):
            order = list(variants) if n % 2 == 0 else list(reversed(variants))
            got = {name: run_variant(variants[name], args, Path(tmp)) for name in order}
            rounds.append({name: r["server_cpu_ms_per_journey"] for name, r in got.items()})
            line = "  ".join(
                f"{name} {rounds[-1][name]:.2f} ms ({got[name]['journeys_per_s']:.0f} journeys/s)"
                for name in variants
            )
            if args.ref:
                line += f"  ratio tree/{args.ref} {rounds[-1]['tree'] / rounds[-1][args.ref]:.3f}"
            print(f"round {n + 1}/{args.rounds}: {line}", flush=True)
    medians = {v: statistics.median(r[v] for r in rounds) for v in variants}
    summary: dict[str, Any] = {
        "journeys": args.journeys,
        "concurrency": args.concurrency,
        "median_server_cpu_ms_per_journey": medians,
    }
    if args.ref:
        summary["median_ratio"] = statistics.median(r["tree"] / r[args.ref] for r in rounds)
    print(
        f"\nmedian server CPU ms per journey over {len(rounds)} rounds of {args.journeys:,} "
        f"journeys, {args.concurrency} in flight: "
        + ", ".join(f"{v} {ms:.2f}" for v, ms in medians.items())
        + (f"; ratio tree/{args.ref} {summary['median_ratio']:.3f}" if args.ref else "")
    )
    name = f"referrals_journey_server_c{args.concurrency}.json"
    (args.out / name).write_text(
        json.dumps({"summary": summary, "rounds": rounds}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
