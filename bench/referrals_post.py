"""POST /referrals throughput and latency: the referrals API against a bare FastAPI + SQLModel
insert endpoint (`bench/baseline_app.py`), both measured in the same run (issue 3).

Each round starts both apps as fresh processes on fresh SQLite files, warms them up, then
measures, alternating which app goes first:

  throughput   closed loop: --concurrency clients, each sending its next request as soon as
               the last one answered, for --duration seconds; 201 responses per second.
  latency      open loop at --rate requests/s for --latency-duration seconds. Send times are
               fixed in advance and latency is counted from the *scheduled* time, so a stalled
               server cannot hide the queue that builds up behind it (no coordinated omission).

The code under test is copied first (the working tree, or --ref REV), so edits made while it
runs change nothing. Each phase is cut into --slices slices run in ABBA order, so a burst of
other work on this shared machine lands on both apps alike, and each round first waits (a
while) for the machine to be quiet; the other processes' CPU use is reported. Both apps get the
same requests (headers a provider system sends, a fresh Idempotency-Key each).

The load generator is a small asyncio HTTP/1.1 client in this process: httpx.AsyncClient needs
~1.5-4 ms of CPU per request, which on this 2-core machine would take a whole core from the
servers; this client needs ~0.2 ms. Its CPU share and its own lateness against the timetable
are reported. Targets: ours >= 60% of the baseline's throughput, and
p99 < 50 ms at 200 requests/s. Medians over rounds; the chart and raw numbers go to --out.

    .venv/bin/python bench/referrals_post.py [--rounds 5] [--duration 10] [--rate 200]
        [--latency-duration 15] [--concurrency 16] [--slices 5] [--out bench/results] [--ref REV]
    .venv/bin/python bench/referrals_post.py --profile [--duration 20]     # py-spy, both apps
    .venv/bin/python bench/referrals_post.py --fhir --rate 100   # FHIR transaction vs JSON POST
    .venv/bin/python bench/referrals_post.py --ref main --against REV  # two revisions, same run
    .venv/bin/python bench/referrals_post.py --telemetry   # metrics+JSON logs+tracing vs all off
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.http import Connection, Pool

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_seconds, machine_busy_seconds
from snapshot import snapshot

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps(
    {
        "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
        "patient": {"nhs_number": "9434765919", "postcode": "BS5 0AA"},
        "service_type": "urgent-community-response",
        "priority": "urgent",
    }
).encode()
PATIENT_URL = "urn:uuid:6f1d2c3b-0000-4000-8000-000000000001"
FHIR_BODY = json.dumps(
    {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": PATIENT_URL,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [
                        {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}
                    ],
                    "address": [{"postalCode": "BS5 0AA"}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "active",
                    "intent": "order",
                    "priority": "urgent",
                    "code": {
                        "coding": [
                            {
                                "system": "https://referral-exchange.example/fhir/CodeSystem/service-type",
                                "code": "urgent-community-response",
                            }
                        ]
                    },
                    "subject": {"reference": PATIENT_URL},
                    "requester": {
                        "type": "Organization",
                        "identifier": {
                            "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                            "value": "B81001",
                        },
                    },
                },
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
        ],
    }
).encode()
"""--fhir: the same referral as BODY, as a FHIR transaction Bundle (Patient + ServiceRequest)."""
PROVIDER_HEADERS = {"X-Organisation": "B81001", "X-Roles": "provider", "X-Practitioner": "G1234567"}
TARGET_RATIO = 0.60
TARGET_P99_MS = 50.0
NAME = "referrals_post"
FHIR_MODE = {"on": False}
"""--fhir: ours is the FHIR transaction on the referrals API, the baseline its JSON POST."""
AGAINST: dict[str, str] = {}
"""--against REV: the baseline is the referrals API of that revision (its frozen PYTHONPATH)."""
TELEMETRY_MODE = {"on": False}
"""--telemetry: ours is the referrals API as it runs (metrics, JSON logs, tracing with no
exporter), the baseline the same code with all three switched off."""
TELEMETRY_OFF = {"RX_METRICS": "false", "RX_LOG_FORMAT": "text", "RX_TRACING": "false"}
REQUEST_TIMEOUT_S = 10.0
OPEN_LOOP_MAX_CONNECTIONS = 64
APPS = ("ours", "baseline")
PHASES = ("throughput", "latency")
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}


class UnexpectedResponse(Exception):
    """An app answered something other than 201: the run stops and shows the answer."""

    def __init__(self, app: str, status: int, head: str, body: bytes) -> None:
        super().__init__(f"{app} answered {status}")
        self.app, self.status, self.head, self.body = app, status, head, body


@dataclass
class Target:
    name: str
    port: int
    pid: int

    @property
    def fhir(self) -> bool:
        return FHIR_MODE["on"] and self.name == "ours"

    @property
    def expected(self) -> int:
        return 200 if self.fhir else 201

    def request(self) -> bytes:
        body, path = (FHIR_BODY, "/fhir/R4/") if self.fhir else (BODY, "/referrals")
        headers = {
            "Host": f"127.0.0.1:{self.port}",
            "Content-Type": "application/fhir+json" if self.fhir else "application/json",
            "Content-Length": str(len(body)),
            **PROVIDER_HEADERS,
            "Idempotency-Key": str(uuid.uuid4()),
        }
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body


async def post_once(target: Target, conn: Connection) -> bool:
    """One POST with a timeout; True when the connection can be reused. Non-201 raises."""
    status, head, body, keep = await asyncio.wait_for(
        conn.send(target.request()), REQUEST_TIMEOUT_S
    )
    if status != target.expected:
        raise UnexpectedResponse(target.name, status, head, body)
    return keep


# --- load phases --------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


@dataclass
class Tally:
    """One app's numbers in one phase, summed over its slices."""

    seconds: float = 0.0  # nominal load time (the rate and throughput denominators)
    wall: float = 0.0  # measured, for the CPU shares
    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(
        default_factory=lambda: {"server": 0.0, "generator": 0.0, "other": 0.0}
    )

    @contextlib.contextmanager
    def metered(self, pid: int, seconds: float) -> Iterator[None]:
        """Add a slice's wall time and CPU time: the server's, this generator's, and the rest
        of the machine's (other people's work on a shared machine shows up there)."""
        wall, server, gen, busy = (
            time.perf_counter(),
            cpu_seconds(pid),
            time.process_time(),
            machine_busy_seconds(),
        )
        yield
        self.seconds += seconds
        self.wall += time.perf_counter() - wall
        self.cpu["server"] += cpu_seconds(pid) - server
        self.cpu["generator"] += time.process_time() - gen
        self.cpu["other"] += machine_busy_seconds() - busy
        self.cpu["other"] -= cpu_seconds(pid) - server + time.process_time() - gen

    def shares(self) -> dict[str, float]:
        """CPU used per second of wall time (1.0 = one core busy)."""
        return {f"{k}_cpu": round(max(v, 0) / self.wall, 3) for k, v in self.cpu.items()}

    def throughput(self) -> dict[str, Any]:
        mean = statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")
        return {
            "rps": round(self.ok / self.seconds, 1),
            "ok": self.ok,
            "errors": self.errors,
            "mean_latency_ms": round(mean, 2),
            **self.shares(),
        }

    def latency(self) -> dict[str, Any]:
        ms = sorted(x * 1000 for x in self.latencies)
        lag_ms = sorted(x * 1000 for x in self.lag)
        return {
            "sent": len(ms),
            "non_201": self.errors,
            **{name: round(percentile(ms, p), 2) for name, p in PERCENTILES.items()},
            "generator_lag_p99_ms": round(percentile(lag_ms, 99), 2),
            "generator_lag_max_ms": round(lag_ms[-1], 2),
            **self.shares(),
            "latencies_ms": [round(x, 2) for x in ms],
        }


async def wait_for_quiet(below: float, patience: float, label: str) -> dict[str, float]:
    """Wait until the rest of the machine uses less than ``below`` cores over 2 s (others may
    share this 2-core machine), for at most ``patience`` seconds; measure regardless."""
    started = time.perf_counter()
    while True:
        busy = machine_busy_seconds()
        await asyncio.sleep(2)
        load = (machine_busy_seconds() - busy) / 2
        waited = time.perf_counter() - started
        if load < below or waited >= patience:
            if waited > 3:
                erase = "\r\033[K" if sys.stdout.isatty() else ""
                print(f"{erase}{label}  waited {waited:.0f} s; other load {load:.2f} cores")
            return {"waited_s": round(waited, 1), "other_cores": round(load, 2)}
        note = f"{label}  waiting for a quiet machine: others use {load:.2f} cores"
        if sys.stdout.isatty():
            print(f"\r{note} ({waited:.0f}/{patience:.0f} s)", end="", flush=True)
        elif round(waited) % 20 < 2:  # a line every 20 s in a log
            print(f"{note} ({waited:.0f}/{patience:.0f} s)", flush=True)


async def with_ticker(label: str, tally: Tally, work: Awaitable[Any]) -> Any:
    """Await ``work`` while showing the responses so far, once a second (on a terminal)."""

    async def tick() -> None:
        while sys.stdout.isatty():
            await asyncio.sleep(1)
            print(f"\r{label}  {tally.ok} ok", end="", flush=True)

    ticker = asyncio.create_task(tick())
    try:
        return await work
    finally:
        ticker.cancel()
        if sys.stdout.isatty():
            print("\r\033[K", end="", flush=True)


async def closed_loop(target: Target, clients: int, seconds: float, tally: Tally) -> None:
    """Each client posts again as soon as it has an answer; counts 201s inside the window."""

    async def client(deadline: float) -> None:
        conn: Connection | None = None
        try:
            while (start := time.perf_counter()) < deadline:
                try:
                    conn = conn or await Connection.open(target.port)
                    keep = await post_once(target, conn)
                except (OSError, asyncio.IncompleteReadError, TimeoutError):
                    tally.errors += 1
                    keep = False
                    await asyncio.sleep(0.01)
                else:
                    if (end := time.perf_counter()) <= deadline:
                        tally.ok += 1
                        tally.latencies.append(end - start)
                if not keep and conn is not None:
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    with tally.metered(target.pid, seconds):
        deadline = time.perf_counter() + seconds
        clients_done = asyncio.gather(*(client(deadline) for _ in range(clients)))
        await asyncio.wait_for(clients_done, seconds + REQUEST_TIMEOUT_S + 30)


async def open_loop(target: Target, rate: float, seconds: float, tally: Tally) -> None:
    """Requests on a fixed timetable; latency from each request's scheduled send time."""
    pool = Pool(target.port, OPEN_LOOP_MAX_CONNECTIONS)

    async def one(scheduled: float) -> None:
        # How late this generator is in starting the request: its own overload, not the server's.
        tally.lag.append(time.perf_counter() - scheduled)
        conn, keep = None, False
        try:
            conn = await pool.acquire()  # waiting here counts: the clock started at `scheduled`
            keep = await post_once(target, conn)
            tally.ok += 1
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            tally.errors += 1
        tally.latencies.append(time.perf_counter() - scheduled)
        if conn is not None:  # (a failed acquire has given its place back already)
            await pool.release(conn, keep)

    tasks: list[asyncio.Task[None]] = []
    try:
        for conn in [await pool.acquire() for _ in range(8)]:  # connected before the clock
            await pool.release(conn, keep=True)
        with tally.metered(target.pid, seconds):
            start = time.perf_counter() + 0.01
            for i in range(round(rate * seconds)):
                scheduled = start + i / rate
                if (delay := scheduled - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(scheduled)))
            # Every request ends by its own timeout; this bounds a bug in the generator.
            await asyncio.wait_for(asyncio.gather(*tasks), REQUEST_TIMEOUT_S + 30)
    finally:
        for task in tasks:
            task.cancel()
        pool.close()


Phase = Callable[[Target, float, Tally], Awaitable[None]]


async def interleaved(
    targets: dict[str, Target],
    order: list[str],
    phase: Phase,
    seconds: float,
    slices: int,
    label: str,
) -> dict[str, Tally]:
    """Run ``phase`` for each app in ``slices`` slices, ABBA-ordered, so a burst of other work
    on the machine lands on both apps alike instead of on whichever ran at the time."""
    tallies = {name: Tally() for name in order}
    for j in range(slices):
        for name in order if j % 2 == 0 else order[::-1]:
            await asyncio.sleep(0.2)
            work = phase(targets[name], seconds / slices, tallies[name])
            tick = f"{label}  slice {j + 1}/{slices}  {name:<8}"
            await with_ticker(tick, tallies[name], work)
    return tallies


# --- the two server processes ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path) -> None:
        with self.log.open("wb") as log:
            # Its own session: Ctrl-C reaches only us, and we stop the server in order.
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_healthy(self, timeout: float = 60) -> None:
        assert self.proc is not None
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = await reader.read()
                writer.close()
                if answer.startswith(b"HTTP/1.1 200"):
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not healthy after {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL if it is still there 10 s later."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextlib.contextmanager
def servers(workdir: Path, pythonpath: str) -> Iterator[dict[str, Server]]:
    """Ours and the baseline on free ports and fresh SQLite files; always stopped after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
    env["PYTHONPATH"] = pythonpath
    ours_port, base_port = free_port(), free_port()
    started = {
        "ours": Server(
            "ours",
            [sys.executable, "-m", "referrals", "api"],
            env
            | {
                "REFERRALS_DATABASE_URL": f"sqlite:///{workdir}/referrals.db",
                "REFERRALS_PORT": str(ours_port),
                # The bench sends the development identity headers and no rate limit applies:
                # this measures the POST path, not token checks.
                "RX_ENV": "development",
                "RX_AUTH": "dev-headers",
                "RX_RATE_LIMIT_PER_SECOND": "0",
            },
            ours_port,
            workdir / "ours.log",
        ),
        "baseline": Server(
            "baseline",
            [
                sys.executable,
                str(ROOT / "bench" / "baseline_app.py"),
                "--port",
                str(base_port),
                "--database-url",
                f"sqlite:///{workdir}/baseline.db",
            ],
            env,
            base_port,
            workdir / "baseline.log",
        ),
    }
    if FHIR_MODE["on"]:
        # The baseline is the referrals API too, answering its JSON POST /referrals.
        started["baseline"] = Server(
            "baseline",
            started["ours"].argv,
            started["ours"].env
            | {
                "REFERRALS_DATABASE_URL": f"sqlite:///{workdir}/referrals-json.db",
                "REFERRALS_PORT": str(base_port),
            },
            base_port,
            workdir / "baseline.log",
        )
    if AGAINST:
        # The baseline is the referrals API too, as it was at another revision.
        started["baseline"] = Server(
            "baseline",
            started["ours"].argv,
            started["ours"].env
            | {
                "PYTHONPATH": AGAINST["pythonpath"],
                "REFERRALS_DATABASE_URL": f"sqlite:///{workdir}/referrals-against.db",
                "REFERRALS_PORT": str(base_port),
            },
            base_port,
            workdir / "baseline.log",
        )
    if TELEMETRY_MODE["on"]:
        started["baseline"] = Server(
            "baseline",
            started["ours"].argv,
            started["ours"].env
            | TELEMETRY_OFF
            | {
                "REFERRALS_DATABASE_URL": f"sqlite:///{workdir}/referrals-off.db",
                "REFERRALS_PORT": str(base_port),
            },
            base_port,
            workdir / "baseline.log",
        )
        for name in TELEMETRY_OFF:
            started["ours"].env.pop(name, None)
    try:
        for server in started.values():
            server.start(workdir)
        yield started
    finally:
        for server in started.values():
            server.stop()


# --- profiling (--profile) -------------------------------------------------------------------


async def profile(args: argparse.Namespace, workdir: Path) -> None:
    """Record each app with py-spy (the GIL-holding thread: the route runs in Starlette's
    thread pool, which pyinstrument does not see) under the throughput phase's closed loop,
    and print the frames taking most of ours' time."""
    spy_exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    args.out.mkdir(parents=True, exist_ok=True)
    with servers(workdir, args.pythonpath) as procs:
        await asyncio.gather(*(s.wait_healthy(180) for s in procs.values()))
        for name in APPS:
            proc = procs[name].proc
            assert proc is not None
            target, raw = Target(name, procs[name].port, proc.pid), args.out / f"{name}.pyspy.txt"
            await closed_loop(target, args.concurrency, args.warmup, Tally())
            print(f"profile  {name:<8}  {args.duration:g} s under {args.concurrency} clients ...")
            options = f"--duration {args.duration:.0f} --rate 250 --nonblocking --gil --format raw"
            spy = subprocess.Popen(
                [spy_exe, "record", "--pid", str(target.pid), *options.split(), "-o", str(raw)],
                stdout=subprocess.DEVNULL,
            )
            try:
                tally = Tally()
                await closed_loop(target, args.concurrency, args.duration + 2, tally)
                spy.wait(30)
            finally:
                if spy.poll() is None:
                    spy.terminate()
                    spy.wait()
            samples = sum(int(line.rsplit(" ", 1)[1]) for line in raw.read_text().splitlines())
            gil_ms = samples * 4 / (tally.ok * args.duration / (args.duration + 2))
            print(
                f"profile  {name:<8}  {tally.throughput()['rps']:.0f} req/s, "
                f"~{gil_ms:.2f} ms holding the GIL per request; stacks in {raw}"
            )
    print_top_frames(args.out / "ours.pyspy.txt")


def print_top_frames(raw: Path, top: int = 25) -> None:
    """Inclusive share of samples per function of our own packages, from py-spy's collapsed
    stacks (the raw file has everything, for a flame graph: speedscope opens it)."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        total += int(count)
        for frame in {f.split(":")[0] + ")" for f in stack.split(";")}:
            inclusive[frame] = inclusive.get(frame, 0) + int(count)
    ours = [(f, n) for f, n in inclusive.items() if re.search(r"\((referrals|rx_\w+)/", f)]
    print("\nours: share of GIL-holding samples per function of our packages (inclusive)")
    for frame, samples in sorted(ours, key=lambda kv: -kv[1])[:top]:
        print(f"  {samples / total:6.1%}  {frame}")


# --- a run -----------------------------------------------------------------------------------


async def run_round(n: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    order = ["ours", "baseline"] if n % 2 == 0 else ["baseline", "ours"]
    prefix = f"round {n + 1}/{args.rounds}"
    with servers(workdir, args.pythonpath) as procs:
        await asyncio.gather(*(s.wait_healthy(180) for s in procs.values()))
        targets = {name: Target(name, s.port, s.proc.pid) for name, s in procs.items() if s.proc}
        print(f"{prefix}  warm-up  {args.warmup:g} s each  (first: {order[0]})", flush=True)
        for name in order:
            conn = await Connection.open(targets[name].port)
            await post_once(targets[name], conn)  # a non-201 stops here, before any numbers
            conn.close()
            await closed_loop(targets[name], args.concurrency, args.warmup, Tally())
        quiet = await wait_for_quiet(args.quiet_below, args.quiet_patience, prefix)

        async def throughput(target: Target, seconds: float, tally: Tally) -> None:
            await closed_loop(target, args.concurrency, seconds, tally)

        async def latency(target: Target, seconds: float, tally: Tally) -> None:
            await open_loop(target, args.rate, seconds, tally)

        label = f"{prefix}  throughput"
        tp = await interleaved(targets, order, throughput, args.duration, args.slices, label)
        for name in order:
            r = tp[name].throughput()
            print(
                f"{label}  {name:<8}  {args.concurrency} clients  {r['rps']:7.1f} req/s  "
                f"errors {r['errors']}  (CPU: server {r['server_cpu']:.0%}, generator "
                f"{r['generator_cpu']:.0%}, other processes {r['other_cpu']:.0%})",
                flush=True,
            )
        label = f"{prefix}  {args.rate:g} req/s"
        lat = await interleaved(targets, order, latency, args.latency_duration, args.slices, label)
        for name in order:
            r = lat[name].latency()
            print(
                f"{label}  {name:<8}  p50 {r['p50']:.1f}  p90 {r['p90']:.1f}  p99 {r['p99']:.1f}  "
                f"max {r['max']:.1f} ms  non-201 {r['non_201']}  (generator lag p99 "
                f"{r['generator_lag_p99_ms']:.1f} ms; CPU: server {r['server_cpu']:.0%}, other "
                f"processes {r['other_cpu']:.0%})",
                flush=True,
            )
    return {
        "order": order,
        "quiet": quiet,
        "throughput": {name: tp[name].throughput() for name in APPS},
        "latency": {name: lat[name].latency() for name in APPS},
    }


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds; the throughput ratio is the median of each round's own ratio."""
    tp = {app: statistics.median(r["throughput"][app]["rps"] for r in rounds) for app in APPS}
    ratio = statistics.median(
        r["throughput"]["ours"]["rps"] / r["throughput"]["baseline"]["rps"] for r in rounds
    )
    latency = {
        app: {
            key: statistics.median(r["latency"][app][key] for r in rounds)
            for key in [*PERCENTILES, "non_201", "generator_lag_p99_ms"]
        }
        for app in APPS
    }
    errors = sum(r["latency"]["ours"]["non_201"] for r in rounds)
    other = [r[phase][app]["other_cpu"] for r in rounds for phase in PHASES for app in APPS]
    return {
        "throughput_rps": tp,
        "throughput_ratio": round(ratio, 3),
        "latency_ms": latency,
        "ratio_pass": ratio >= TARGET_RATIO,
        "p99_pass": latency["ours"]["p99"] < TARGET_P99_MS and errors == 0,
        "other_cores": round(statistics.median(other), 2),
    }


def print_table(summary: dict[str, Any], args: argparse.Namespace) -> None:
    tp, lat = summary["throughput_rps"], summary["latency_ms"]
    verdict = {True: "PASS", False: "MISS"}
    print(f"\nMedians over {args.rounds} rounds ({os.cpu_count()} cores):\n")
    print("| | ours | baseline | ours / baseline | target | |")
    print("|---|---|---|---|---|---|")
    print(
        f"| throughput, {args.concurrency} clients | {tp['ours']:.0f} req/s | "
        f"{tp['baseline']:.0f} req/s | {summary['throughput_ratio']:.2f} | >= {TARGET_RATIO:.2f} | "
        f"{verdict[summary['ratio_pass']]} |"
    )
    for key in PERCENTILES:
        target, mark = "", ""
        if key == "p99":
            target, mark = f"< {TARGET_P99_MS:.0f} ms", verdict[summary["p99_pass"]]
        o, b = lat["ours"][key], lat["baseline"][key]
        print(
            f"| {key} at {args.rate:g} req/s | {o:.1f} ms | {b:.1f} ms | {o / b:.2f} | {target} | {mark} |"
        )
    print(
        f"| non-201 at {args.rate:g} req/s | {lat['ours']['non_201']:.0f} | "
        f"{lat['baseline']['non_201']:.0f} | | | |"
    )


def print_conditions(rounds: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """How much to trust the table: spread, the generator's own cost, the machine's other load."""
    ratios = [r["throughput"]["ours"]["rps"] / r["throughput"]["baseline"]["rps"] for r in rounds]
    lag = max(r["latency"][app]["generator_lag_p99_ms"] for r in rounds for app in APPS)
    gen = max(r[phase][app]["generator_cpu"] for r in rounds for phase in PHASES for app in APPS)
    print(
        f"\nthroughput ratio per round: {' '.join(f'{x:.2f}' for x in ratios)}\n"
        f"load generator: at most {gen:.0%} of a core; p99 lateness against the timetable at "
        f"most {lag:.1f} ms\nother processes on the machine: median {summary['other_cores']:.2f} "
        "cores while measuring"
    )


def short(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def write_chart(
    path: Path, rounds: list[dict[str, Any]], summary: dict[str, Any], args: argparse.Namespace
) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart (uv add --dev matplotlib)")
        return False
    colours = {"ours": "#1f77b4", "baseline": "#a0a0a0"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2), width_ratios=[2, 1])
    keys, width = list(PERCENTILES), 0.38
    for i, app in enumerate(APPS):
        xs = [k + (i - 0.5) * width for k in range(len(keys))]
        values = [summary["latency_ms"][app][key] for key in keys]
        bars = left.bar(xs, values, width, label=f"{app}: median of rounds", color=colours[app])
        left.bar_label(bars, fmt=short, fontsize=8, padding=2)
        for x, key in zip(xs, keys, strict=True):
            per_round = [r["latency"][app][key] for r in rounds]
            left.scatter(
                [x + width * 0.3] * len(per_round), per_round, s=9, color="black", zorder=3
            )
    left.scatter([], [], s=9, color="black", label="single rounds")
    left.axhline(
        TARGET_P99_MS,
        color="red",
        linestyle="--",
        linewidth=1,
        label=f"target: ours p99 < {TARGET_P99_MS:.0f} ms",
    )
    highest = max(r["latency"][app]["max"] for r in rounds for app in APPS)
    log = highest > 10 * TARGET_P99_MS
    if log:
        left.set_yscale("log")
    left.set_xticks(range(len(keys)), keys)
    left.set_ylabel("ms from each request's scheduled send time" + (" (log scale)" if log else ""))
    left.set_title(
        f"Latency at {args.rate:g} requests/s (open loop, {args.latency_duration:g} s per app)"
    )
    left.legend(loc="upper left", fontsize=8)
    for i, app in enumerate(APPS):
        per_round = [r["throughput"][app]["rps"] for r in rounds]
        bar = right.bar(i, summary["throughput_rps"][app], 0.6, color=colours[app])
        right.bar_label(bar, fmt="%.0f", padding=2)
        right.scatter([i + 0.2] * len(per_round), per_round, s=9, color="black", zorder=3)
    floor = TARGET_RATIO * summary["throughput_rps"]["baseline"]
    right.axhline(
        floor,
        color="red",
        linestyle="--",
        linewidth=1,
        label=f"target: {TARGET_RATIO:.0%} of baseline",
    )
    right.set_xticks(range(len(APPS)), APPS)
    right.set_ylabel("successful creates per second")
    right.set_title(
        f"Throughput ({args.concurrency} clients, closed loop)\n"
        f"ours / baseline = {summary['throughput_ratio']:.2f} (median of rounds)"
    )
    right.legend(loc="upper left", fontsize=8)
    right.set_ylim(0, max(r["throughput"][a]["rps"] for r in rounds for a in APPS) * 1.2)
    what = (
        "FHIR transaction Bundle (ours) vs JSON POST /referrals (baseline), both the referrals API"
        if FHIR_MODE["on"]
        else "POST /referrals: referrals API vs bare FastAPI + SQLModel insert"
    )
    fig.suptitle(
        f"{what} — {os.cpu_count()}-core "
        f"machine, SQLite, {len(rounds)} rounds\nother processes on the machine used a median "
        f"{summary['other_cores']:.1f} cores while measuring"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def machine(args: argparse.Namespace) -> dict[str, Any]:
    def git(*cmd: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *cmd], capture_output=True, text=True
        ).stdout.strip()

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "measured": args.ref or "working tree",
        "uncommitted": git(
            "status", "--porcelain", "services/referrals", "libs", "contracts"
        ).splitlines()
        if not args.ref
        else [],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10, help="throughput phase, seconds")
    parser.add_argument("--latency-duration", type=float, default=15, help="latency phase, seconds")
    parser.add_argument("--rate", type=float, default=200, help="latency phase, requests/s")
    parser.add_argument("--concurrency", type=int, default=16, help="throughput phase clients")
    parser.add_argument("--warmup", type=float, default=3, help="seconds per app per round")
    parser.add_argument("--slices", type=int, default=5, help="ABBA slices per phase")
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.3,
        help="before measuring, wait until other processes use fewer cores than this ...",
    )
    parser.add_argument("--quiet-patience", type=float, default=120, help="... for at most this")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--ref", help="measure this git revision (exported) instead of the tree")
    parser.add_argument(
        "--profile", action="store_true", help="instead: py-spy both apps for --duration s"
    )
    parser.add_argument(
        "--fhir",
        action="store_true",
        help="ours = FHIR transaction Bundles to /fhir/R4, baseline = JSON POST /referrals "
        "(targets: ratio >= 0.50, p99 < 100 ms; use --rate 100)",
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="baseline = the referrals API at git revision REV, same requests (target: ratio "
        ">= 0.95, i.e. not worse than 5%%)",
    )
    parser.add_argument(
        "--telemetry",
        action="store_true",
        help="ours = the referrals API with metrics, JSON logs and tracing (no exporter), "
        "baseline = the same with them off (target: ratio >= 0.95)",
    )
    args = parser.parse_args()
    global TARGET_RATIO, TARGET_P99_MS, NAME
    if args.against:
        TARGET_RATIO, NAME = 0.95, "referrals_post_against"
    if args.telemetry:
        TELEMETRY_MODE["on"] = True
        TARGET_RATIO, NAME = 0.95, "telemetry_post"
    if args.fhir:
        FHIR_MODE["on"] = True
        TARGET_RATIO, TARGET_P99_MS, NAME = 0.50, 100.0, "fhir_post"
    # Stop the servers on SIGTERM/SIGHUP as on Ctrl-C: via the finally blocks.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    info = machine(args)
    print(
        f"referrals POST benchmark: {info['cores']} cores ({info['cpu']}), Python {info['python']}, "
        f"{info['measured']} at {info['commit']}"
        + (f" with {len(info['uncommitted'])} uncommitted changes" if info["uncommitted"] else "")
        + (f"; baseline: the referrals API at {args.against}" if args.against else "")
    )
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rx-bench-") as tmp:
        args.pythonpath, info["source_digest"] = snapshot(args.ref, Path(tmp) / "src")
        if args.against:
            AGAINST["pythonpath"], info["against_digest"] = snapshot(
                args.against, Path(tmp) / "against"
            )
            info["against"] = args.against
        print(f"code under test frozen in {tmp}/src (sources digest {info['source_digest']})")
        try:
            if args.profile:
                (Path(tmp) / "profile").mkdir()
                asyncio.run(profile(args, Path(tmp) / "profile"))
                return 0
            for n in range(args.rounds):
                workdir = Path(tmp) / f"round{n + 1}"
                workdir.mkdir()
                rounds.append(asyncio.run(run_round(n, args, workdir)))
        except UnexpectedResponse as exc:
            print(f"\n{exc.app} answered {exc.status} to POST /referrals; stopping.\n")
            print(exc.head + exc.body.decode(errors="replace")[:4000])
            return 1
        except RuntimeError as exc:  # a server did not start
            print(f"\n{exc}")
            return 1
        except KeyboardInterrupt:
            print("\ninterrupted; servers stopped")
            return 130
    summary = summarise(rounds)
    print_table(summary, args)
    print_conditions(rounds, summary)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in {"out", "pythonpath"}}
    raw = {"machine": info, "settings": settings, "summary": summary, "rounds": rounds}
    (args.out / f"{NAME}.json").write_text(json.dumps(raw, indent=1) + "\n")
    print(f"\nraw numbers: {args.out / f'{NAME}.json'}")
    if write_chart(args.out / f"{NAME}.png", rounds, summary, args):
        print(f"chart: {args.out / f'{NAME}.png'}")
    return 0 if summary["ratio_pass"] and summary["p99_pass"] else 2


if __name__ == "__main__":
    sys.exit(main())
