"""Load: realistic referral journeys at fixed arrival rates against the whole platform, and
what it holds (issue 7).

For each rate in --rates, a fresh stack (its own Kafka broker, the issuer and the ten service
processes of `make run`, SQLite, demo directory with daily capacities lifted so the load is
routed, not escalated) gets --duration seconds of load from `devstack.load`: GP practices
submit referrals at the rate (open loop, latency from each one's scheduled send time, so a
stalled API cannot hide its queue), simulated providers follow their provider topics and
reject (a share of first offers) or accept, start and complete after think times of
--think seconds. Then the journeys finish, the pipeline drains, and the conservation check
compares every database, the provider topics and the audit chain with what was accepted.

Reported per rate: throughput (201s per second of load), API latency percentiles, end-to-end
latency from the scheduled POST to the referral's ReferralRouted on its provider topic (as the
provider saw it) and in the audit log (the audit service's live stream), consumer lag per
group over time, the conservation verdict, and CPU: every process of the stack (broker,
issuer, APIs, relays, consumers, clock; each with whatever it spawned) read from /proc, as
CPU-ms per journey (from the first arrival until every journey finished and every consumer
group caught up, divided by the referrals accepted) and as cores while idle (--idle s before
the load) and during the load window. The load generator's own CPU is reported apart. A rate
is held when >= 95% of the offered referrals were accepted within the load window, the API p99
is under --p99-ms (500), the p99 from arrival to the provider's topic is under
--provider-p99-ms (250), the lag at the end of the load is under three seconds' worth of events
(plus what the consumers' commit interval leaves uncommitted), and everything is conserved. Medians over --rounds. Chart and numbers go to --out.

--shapes runs the stack in each of the given shapes in the same session, one after the
other per rate: ``sqlite`` (the default, `make run`), ``postgres`` (every service on a
PostgreSQL database of its own, on a server started for the run, its CPU counted like the
other processes') and ``postgres:2`` (two processes of every role, the APIs behind the
local balancer, whose CPU counts too).

--ref REV (repeatable) measures git revisions beside the working tree in the same session:
each is frozen (``snapshot.py``) and each run is a child process with that code first on
PYTHONPATH (services, broker settings and load driver alike), the variants alternating per
round (A/B/A/B). --profile records the --profile-top busiest processes for --profile-duration
s, --profile-at s into the load: flame graphs and collapsed stacks into --out/profiles/<run>.

--warmup S runs the load for S seconds before the measured window, so that what a fresh stack
does once (the broker's JIT compiling the paths the load takes, first connections, caches
filling) is not billed to the journeys: the steady state a long-running deployment pays. The
journeys sent while warming up are not timed or counted; the work left of those still in flight
when the window opens is charged to the measured ones (an over-estimate, never an under-).

    .venv/bin/python bench/load.py [--rates 10,20,40] [--duration 60] [--rounds 1]
        [--think 0.5,3] [--p99-ms 500] [--idle 20] [--shapes sqlite,postgres,postgres:2]
        [--ref main] [--profile] [--warmup 0] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from devstack.broker import Broker, ensure_jars
from devstack.conservation import ConservationCheck, Databases, verify_with_api
from devstack.load import Endpoints, Journey, LoadConfig, LoadDriver
from devstack.ports import free_ports
from devstack.postgres import PostgresError, PostgresServer, ensure_postgres_installed
from devstack.providers import Tokens
from devstack.stack import DEFAULT_PORTS, Stack, StackError, postgres_databases
from devstack.topics import ensure_topics
from load_cpu import BROKER, CpuLedger, Profiler
from load_observe import AuditWatcher, LagSampler, batch_sizes, relay_cycles
from rx_contracts.topics import all_topics
from snapshot import snapshot

ROOT = Path(__file__).resolve().parent.parent
PERCENTILES = (50, 90, 99)


def pct(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def lift_capacities(stack: Stack, tokens: Tokens) -> None:
    """Size the demo directory for the load: no daily capacity limits (an admin change)."""
    headers = {"Authorization": f"Bearer {tokens.get('admin', 'routing')}"}
    base = stack.url("routing")
    for org in httpx.get(f"{base}/organisations", headers=headers, timeout=10).json():
        body = {k: org[k] for k in ("name", "provider_type", "localities", "opening_hours")}
        body |= {"daily_capacity": None, "active": org["active"]}
        put = httpx.put(f"{base}/organisations/{org['ods_code']}", json=body, headers=headers)
        put.raise_for_status()


def parse_shape(text: str) -> tuple[str, int]:
    """``sqlite`` / ``postgres`` / ``postgres:2`` -> (database, processes per role)."""
    db, _, replicas = text.partition(":")
    if db not in ("sqlite", "postgres") or not (replicas or "1").isdigit():
        raise ValueError(f"a shape is sqlite or postgres, optionally :N processes; not {text!r}")
    return db, int(replicas or 1)


def start_postgres(exits: ExitStack) -> PostgresServer:
    """A PostgreSQL server of this run's own (data under /tmp: as root it runs as
    ``postgres``, which cannot enter the run's private temp dir), dropped afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="rx-load-pg-"))
    exits.callback(shutil.rmtree, data_dir, True)
    [port] = free_ports(1)
    server = PostgresServer(data_dir, port=port, bin_dir=ensure_postgres_installed())
    exits.callback(server.stop)
    server.start(timeout=240)
    return server


def process_group(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])


def start_stack(
    workdir: Path, exits: ExitStack, shape: str = "sqlite"
) -> tuple[Broker, Stack, dict[str, int]]:
    """Broker, stack, and the process groups of what else the run started (PostgreSQL)."""
    db, replicas = parse_shape(shape)
    broker_port, controller_port = free_ports(2)
    broker = Broker(workdir / "kafka", port=broker_port, controller_port=controller_port)
    exits.callback(broker.stop)  # also when interrupted while it starts
    broker.start(timeout=240)  # a busy shared machine can take minutes
    ensure_topics(broker.bootstrap_servers, all_topics())
    databases: dict[str, str] = {}
    others: dict[str, int] = {}
    if db == "postgres":
        server = start_postgres(exits)
        databases = postgres_databases(server.url())
        others["postgresql"] = process_group(server.pid or 0)
    ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
    stack = Stack(
        workdir / "stack",
        broker.bootstrap_servers,
        ports=ports,
        group_prefix="load-",
        databases=databases,
        replicas=replicas,
    )
    exits.callback(stack.stop)
    stack.start(timeout=240 * replicas)
    return broker, stack, others


def one_run(rate: float, args: argparse.Namespace, label: str) -> dict[str, Any]:
    """A fresh stack, its idle CPU, --duration s of load at ``rate``, drain, conservation."""
    with (
        tempfile.TemporaryDirectory(prefix="rx-load-", ignore_cleanup_errors=True) as tmp,
        ExitStack() as exits,
    ):
        print(f"{label}: starting broker and stack ({args.shape}) …", flush=True)
        broker, stack, others = start_stack(Path(tmp), exits, args.shape)
        tokens = Tokens(stack.url("issuer"))
        lift_capacities(stack, tokens)
        leaders = {name: proc.pid for name, proc in stack.procs.items()} | others
        ledger = CpuLedger(leaders | {BROKER: broker.pid or 0})
        time.sleep(5)  # start-up work (JIT, first metadata, group joins) settles
        ledger.mark("idle")
        time.sleep(args.idle)
        ledger.mark("idle end")
        groups = [f"load-{s}" for s in ("referrals", "routing", "audit")]
        lag = LagSampler(broker.bootstrap_servers, groups)
        audit = AuditWatcher(stack.url("audit"), tokens.get("ops", "audit"))
        config = LoadConfig(rate=rate, think=args.think, seed=hash(label) & 0xFFFF)
        endpoints = Endpoints(stack.url("referrals"), stack.url("issuer"), broker.bootstrap_servers)
        load = LoadDriver(endpoints, config, tokens=tokens)
        profiler = (
            Profiler(
                ledger.leaders,
                args.out / "profiles" / re.sub(r"[^\w.]+", "-", label).strip("-"),
                args.profile_top,
                args.profile_duration,
            )
            if args.profile
            else None
        )
        audit.start()
        lag.start()
        exits.callback(lag.stop)
        exits.callback(audit.stop)
        load.start()
        exits.callback(load.close)
        warm_up(label, args.warmup)
        ledger.mark("start")
        loadavg_before = os.getloadavg()[0]
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < args.duration:
            time.sleep(1)  # progress ticks; the load runs in its own thread
            print(f"\r{label}: {progress(load, lag, elapsed)}", end="", flush=True)
            if (
                profiler is not None
                and elapsed >= args.profile_at
                and "profile" not in ledger.marks
            ):
                ledger.mark("profile")
                _, so_far, _ = ledger.between("start", "profile")
                profiler.start(sorted(so_far, key=lambda n: -so_far[n]))
        load.stop_arrivals()
        load_end = time.monotonic()
        ledger.mark("end")
        loadavg = (loadavg_before, os.getloadavg()[0])
        print(f"\n{label}: load stopped; journeys finishing, pipeline draining …", flush=True)
        load.wait_idle(args.drain_timeout)
        finished = time.monotonic() - load_end
        caught_up(lag, time.monotonic() + args.drain_timeout)
        ledger.mark("drained")
        print(
            f"{label}: journeys finished {finished:.0f} s after the load, consumers caught up "
            f"after {time.monotonic() - load_end:.0f} s; lag {lag.latest()}",
            flush=True,
        )
        if profiler is not None:
            profiler.join()
        check = ConservationCheck(
            Databases.of(Path(tmp) / "stack", stack.databases),
            verify_with_api(
                stack.url("audit"), {"Authorization": f"Bearer {tokens.get('ops', 'audit')}"}
            ),
            bootstrap_servers=broker.bootstrap_servers,
        )
        report = check.wait(load.accepted(), timeout=args.drain_timeout, ready=load.idle)
        drained = time.monotonic() - load_end
        print(f"{label}: drained in {drained:.0f} s\n{report.summary()}", flush=True)
        measured = [j for j in list(load.journeys) if j.scheduled >= started]
        result = summarise(rate, args, measured, started, load_end, lag, audit, report, drained)
        cpu = cpu_figures(ledger, sum(1 for j in measured if j.id is not None))
        print(f"{label}: {describe_cpu(cpu)}", flush=True)
        databases = Databases.of(Path(tmp) / "stack", stack.databases)
        cycles = relay_cycles(
            {"referrals": databases.referrals, "routing": databases.routing}
            | {"audit": databases.audit, "notify": databases.notify or ""}
        )
        print(f"{label}: {describe_cycles(cycles)}", flush=True)
        workers = [n for n in stack.procs if any(w in n for w in ("relay", "consumer", "worker"))]
        batches = batch_sizes(stack.ops_url(name) for name in workers) if workers else {}
        print(f"{label}: records per batch {json.dumps(batches)}", flush=True)
        return {
            **result,
            "cpu": cpu,
            "relay_cycles": cycles,
            "batches": batches,
            "loadavg_1m": loadavg,
        }


def caught_up(lag: LagSampler, deadline: float) -> None:
    """Wait (bounded) for a lag sample taken from now on that shows every group caught up."""
    since = time.monotonic()
    while time.monotonic() < deadline:
        fresh = [lags for t, lags in lag.samples if t > since]
        if fresh and not sum(fresh[-1].values()):
            return
        time.sleep(0.2)


def warm_up(label: str, seconds: float) -> None:
    """Let the load run for ``seconds`` before the measured window: the journeys sent meanwhile
    are neither timed nor counted, and their CPU is not charged, except what the ones still in
    flight at the window's start cost after it (charged to the measured journeys: the figure
    errs high, never low)."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(1)
        print(f"\r{label}: warming up, {elapsed:3.0f} of {seconds:g} s", end="", flush=True)
    if seconds > 0:
        print(flush=True)


def cpu_figures(ledger: CpuLedger, accepted: int) -> dict[str, Any]:
    """CPU-ms per journey per process, cores idle and during the load, the generator's own.

    Per journey: every process's CPU from the first arrival until the journeys finished and
    the consumers caught up, less the idle stack's own rate over the drain (a long drain on a
    busy machine would otherwise bill waiting to the journeys), over the referrals accepted."""
    idle_s, idle, _ = ledger.between("idle", "idle end")
    window_s, window, own_window = ledger.between("start", "end")
    drain_s, _, _ = ledger.between("end", "drained")
    _, journey, _ = ledger.between("start", "drained")
    per = {
        n: 1000 * max(0.0, cpu - idle[n] / idle_s * drain_s) / max(accepted, 1)
        for n, cpu in journey.items()
    }
    return {
        "ms_per_journey": dict(sorted(per.items(), key=lambda kv: -kv[1])),
        "ms_per_journey_total": sum(per.values()),
        "window_ms_per_journey": 1000 * sum(window.values()) / max(accepted, 1),
        "idle_cores": {n: cpu / idle_s for n, cpu in idle.items()},
        "idle_cores_total": sum(idle.values()) / idle_s,
        "load_cores": {n: cpu / window_s for n, cpu in window.items()},
        "load_cores_total": sum(window.values()) / window_s,
        "generator_cores": own_window / window_s,
        "drain_s": drain_s,
    }


def describe_cpu(cpu: dict[str, Any]) -> str:
    parts = ", ".join(f"{n} {v:.1f}" for n, v in cpu["ms_per_journey"].items())
    return (
        f"CPU {cpu['ms_per_journey_total']:.1f} ms per journey ({parts}); "
        f"{cpu['load_cores_total']:.2f} cores under load, {cpu['idle_cores_total']:.3f} idle; "
        f"load generator {cpu['generator_cores']:.2f} cores"
    )


def describe_cycles(cycles: dict[str, dict[str, float]]) -> str:
    return "relay cycles: " + "; ".join(
        f"{service} {c['records']:.0f} records in {c['cycles']:.0f} cycles "
        f"({c['records_per_cycle']:.2f} per cycle, max {c['max_per_cycle']:.0f}, "
        f"{100 * c['single_record_cycles']:.0f}% single)"
        for service, c in cycles.items()
    )


def progress(load: LoadDriver, lag: LagSampler, elapsed: float) -> str:
    journeys = list(load.journeys)
    answered = [j for j in journeys if j.answered is not None]
    routed = sum(1 for j in journeys if j.routed is not None)
    lags = " ".join(f"{g.removeprefix('load-')} {n}" for g, n in lag.latest().items())
    return (
        f"{elapsed:4.0f} s  sent {len(journeys)}  201 {len(answered)}  at providers {routed}  "
        f"lag [{lags}]   "
    )


def summarise(
    rate: float,
    args: argparse.Namespace,
    journeys: list[Journey],
    started: float,
    load_end: float,
    lag: LagSampler,
    audit: AuditWatcher,
    report: Any,
    drained: float,
) -> dict[str, Any]:
    in_window = [j for j in journeys if j.answered is not None and j.answered <= load_end]
    api = [1000 * j.api_latency for j in journeys if j.api_latency is not None]
    to_provider = [1000 * (j.routed - j.scheduled) for j in journeys if j.routed and j.id]
    to_audit = [
        1000 * (audit.seen[j.id] - j.scheduled) for j in journeys if j.id and j.id in audit.seen
    ]
    end_lag = {g: n for g, n in (lag.samples[-1][1] if lag.samples else {}).items()}
    samples = [s for s in lag.samples if s[0] <= load_end]
    lag_at_end = sum(samples[-1][1].values()) if samples else 0
    throughput = len(in_window) / (load_end - started)
    # What consumers keeping up hold applied but not yet committed: up to their commit
    # interval's records (RX_CONSUMER_COMMIT_INTERVAL_MS, a second unless set).
    interval = float(os.environ.get("RX_CONSUMER_COMMIT_INTERVAL_MS") or 1000) / 1000
    uncommitted = lag.consumed_per_second(started, load_end) * interval
    p99 = pct(api, 99)
    held = (
        throughput >= 0.95 * rate
        and p99 is not None
        and p99 < args.p99_ms
        and (provider_p99 := pct(to_provider, 99)) is not None
        and provider_p99 < args.provider_p99_ms
        and lag_at_end < rate * 3 + uncommitted  # three streams' worth of one second's events
        and report.ok
    )
    return {
        "rate": rate,
        "sent": len(journeys),
        "throughput": throughput,
        "api_ms": {f"p{p}": pct(api, p) for p in PERCENTILES},
        "to_provider_ms": {f"p{p}": pct(to_provider, p) for p in PERCENTILES},
        "to_audit_ms": {f"p{p}": pct(to_audit, p) for p in PERCENTILES},
        "lag_at_end_of_load": lag_at_end,
        "lag_uncommitted_allowed": uncommitted,
        "lag_after_drain": end_lag,
        "lag": [(t - started, lags) for t, lags in lag.samples if t >= started],
        "warmup_s": args.warmup,
        "completed": sum(1 for j in journeys if any(s.startswith("complete") for s in j.steps)),
        "rejections": sum(1 for j in journeys for s in j.steps if s.startswith("reject")),
        "errors": [e for j in journeys for e in j.errors][:20],
        "drain_s": drained,
        "conserved": report.ok,
        "conservation": report.summary(),
        "held": held,
    }


def median_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    """The median of the figure at ``path`` over the runs that have it."""
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(float(value))
    return statistics.median(values) if values else None


def add_roles(results: Results) -> None:
    """CPU-ms per journey per role (``referrals-api`` summing ``referrals-api.1`` and ``.2``),
    so stacks with one and several processes per role compare column by column."""
    for by_rate in results.values():
        for runs in by_rate.values():
            for run in runs:
                roles: dict[str, float] = {}
                for name, ms_ in run["cpu"]["ms_per_journey"].items():
                    role = name.rsplit(".", 1)[0] if name[-1:].isdigit() else name
                    roles[role] = roles.get(role, 0.0) + ms_
                run["cpu"]["by_role"] = roles


def ms(runs: list[dict[str, Any]], *path: str) -> str:
    value = median_of(runs, *path)
    return "-" if value is None else f"{value:.0f}"


Results = dict[str, dict[float, list[dict[str, Any]]]]
"""variant (``tree`` or a --ref) -> rate -> the runs' figures."""


def table(results: Results) -> str:
    add_roles(results)
    head = (
        f"{'variant':>12} {'rate/s':>7} {'201/s':>6} {'API p50':>8} {'p99':>6} "
        f"{'→provider p50':>14} {'p99':>6} {'→audit p50':>11} {'p99':>6} {'lag@end':>8} "
        f"{'CPU ms/journey':>15} {'idle cores':>10} {'conserved':>9} {'held':>5}"
    )
    lines = [head]
    for variant, by_rate in results.items():
        for rate, runs in by_rate.items():
            lines.append(
                f"{variant[:12]:>12} {rate:>7g} {median_of(runs, 'throughput') or 0:>6.1f} "
                f"{ms(runs, 'api_ms', 'p50'):>8} {ms(runs, 'api_ms', 'p99'):>6} "
                f"{ms(runs, 'to_provider_ms', 'p50'):>14} {ms(runs, 'to_provider_ms', 'p99'):>6} "
                f"{ms(runs, 'to_audit_ms', 'p50'):>11} {ms(runs, 'to_audit_ms', 'p99'):>6} "
                f"{median_of(runs, 'lag_at_end_of_load') or 0:>8.0f} "
                f"{median_of(runs, 'cpu', 'ms_per_journey_total') or 0:>15.1f} "
                f"{median_of(runs, 'cpu', 'idle_cores_total') or 0:>10.3f} "
                f"{'yes' if all(r['conserved'] for r in runs) else 'NO':>9} "
                f"{'yes' if all(r['held'] for r in runs) else 'no':>5}"
            )
    lines.append("\nCPU-ms per journey by role, every process of it (medians over rounds):")
    names = sorted(
        {
            n
            for by_rate in results.values()
            for runs in by_rate.values()
            for r in runs
            for n in r["cpu"]["by_role"]
        },
        key=lambda n: (
            -max(
                median_of(runs, "cpu", "by_role", n) or 0
                for by_rate in results.values()
                for runs in by_rate.values()
            )
        ),
    )
    lines.append(f"{'variant':>12} {'rate/s':>7} " + " ".join(f"{n[:15]:>15}" for n in names))
    for variant, by_rate in results.items():
        for rate, runs in by_rate.items():
            cells = " ".join(f"{median_of(runs, 'cpu', 'by_role', n) or 0:>15.1f}" for n in names)
            lines.append(f"{variant[:12]:>12} {rate:>7g} {cells}")
    lines.append("\nOutbox records per relay cycle (each round):")
    for variant, by_rate in results.items():
        for rate, runs in by_rate.items():
            for run in runs:
                if run.get("relay_cycles"):
                    lines.append(
                        f"{variant[:12]:>12} {rate:>7g} {describe_cycles(run['relay_cycles'])}"
                    )
    return "\n".join(lines)


def chart(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(22, 5.2))
    thr, lat, lag, cpu = axes
    variants = list(results)
    all_rates = sorted({r for by_rate in results.values() for r in by_rate})
    thr.plot(all_rates, all_rates, "k:", label="offered")
    for variant, by_rate in results.items():
        rates = list(by_rate)
        tag = f"{variant}: " if len(variants) > 1 else ""
        thr.plot(
            rates,
            [median_of(by_rate[r], "throughput") for r in rates],
            "o-",
            label=f"{tag}accepted",
        )
        for key, label in (
            ("api_ms", "API"),
            ("to_provider_ms", "→ provider"),
            ("to_audit_ms", "→ audit"),
        ):
            for p, style in (("p50", "o-"), ("p99", "s--")):
                lat.plot(
                    rates,
                    [median_of(by_rate[r], key, p) for r in rates],
                    style,
                    label=f"{tag}{label} {p}",
                )
        for rate in rates:
            run = by_rate[rate][0]
            lag.plot(
                [t for t, _ in run["lag"]],
                [sum(x.values()) for _, x in run["lag"]],
                label=f"{tag}{rate:g}/s",
            )
    thr.set(xlabel="offered referrals/s", ylabel="referrals/s", title="Throughput")
    thr.legend(fontsize=7)
    lat.set(
        xlabel="offered referrals/s",
        ylabel="ms (from scheduled POST)",
        yscale="log",
        title="Latency (medians over rounds)",
    )
    lat.legend(fontsize=6)
    lag.set(
        xlabel="seconds since the load started",
        ylabel="records behind (all groups)",
        title="Consumer lag over time (first round)",
    )
    lag.legend(fontsize=7)
    cpu_bars(cpu, results)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def cpu_bars(ax: Any, results: Results) -> None:
    """Stacked bars: CPU-ms per journey by role, one bar per variant and rate."""
    add_roles(results)
    bars = [
        (f"{v}\n{r:g}/s", runs) for v, by_rate in results.items() for r, runs in by_rate.items()
    ]
    names: dict[str, float] = {}
    for _, runs in bars:
        for n in runs[0]["cpu"]["by_role"]:
            names[n] = max(names.get(n, 0), median_of(runs, "cpu", "by_role", n) or 0)
    order = sorted(names, key=lambda n: -names[n])
    bottoms = [0.0] * len(bars)
    for n in order:
        heights = [median_of(runs, "cpu", "by_role", n) or 0 for _, runs in bars]
        ax.bar(range(len(bars)), heights, bottom=bottoms, label=n)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.axhline(30, color="k", linestyle=":", label="goal (30 ms)")
    ax.set_xticks(range(len(bars)), [label for label, _ in bars], fontsize=7)
    ax.set(ylabel="CPU-ms per journey, all processes", title="CPU per journey by process")
    ax.legend(fontsize=6, ncols=2)


def run_variant(
    pythonpath: str, rate: float, args: argparse.Namespace, label: str, tmp: Path
) -> dict[str, Any]:
    """One run in a child process whose code (services, devstack, broker settings) is the
    frozen variant's."""
    out = tmp / f"run-{time.monotonic_ns()}.json"
    argv = [sys.executable, __file__, "--child", str(out), "--label", label, "--rates", f"{rate:g}"]
    argv += ["--duration", str(args.duration), "--think", ",".join(map(str, args.think))]
    argv += ["--p99-ms", str(args.p99_ms), "--drain-timeout", str(args.drain_timeout)]
    argv += ["--provider-p99-ms", str(args.provider_p99_ms)]
    argv += ["--idle", str(args.idle), "--out", str(args.out), "--shapes", args.shape]
    argv += ["--warmup", str(args.warmup)]
    if args.profile:
        argv += ["--profile", "--profile-at", str(args.profile_at)]
        argv += ["--profile-top", str(args.profile_top)]
        argv += ["--profile-duration", str(args.profile_duration)]
    env = dict(os.environ, PYTHONPATH=pythonpath)
    subprocess.run(argv, env=env, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def save(results: Results, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(
        json.dumps(
            {v: {str(r): runs for r, runs in by_rate.items()} for v, by_rate in results.items()},
            indent=1,
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10,20,40", help="referrals/s, comma-separated")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load per run")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--think", default="0.5,3", help="provider think time range (s)")
    parser.add_argument("--p99-ms", type=float, default=500, help="API p99 for 'held'")
    parser.add_argument(
        "--provider-p99-ms", type=float, default=250, help="arrival → provider topic p99 for 'held'"
    )
    parser.add_argument("--drain-timeout", type=float, default=300)
    parser.add_argument("--idle", type=float, default=20, help="idle CPU measured for this long")
    parser.add_argument(
        "--warmup",
        type=float,
        default=0,
        help="seconds of load before the measured window (steady state: start-up work apart)",
    )
    parser.add_argument(
        "--shapes",
        default="sqlite",
        help="comma-separated: sqlite, postgres, postgres:N (N processes per role)",
    )
    parser.add_argument("--ref", action="append", default=[], help="also measure this revision")
    parser.add_argument("--profile", action="store_true", help="flame graphs under load")
    parser.add_argument("--profile-at", type=float, default=20, help="seconds into the load")
    parser.add_argument("--profile-top", type=int, default=4, help="how many processes")
    parser.add_argument("--profile-duration", type=float, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.think = tuple(float(x) for x in args.think.split(","))
    rates = [float(r) for r in args.rates.split(",")]
    shapes = args.shapes.split(",")
    for shape in shapes:
        parse_shape(shape)
    # Every referral comes from three practices and goes to a handful of teams: the per-client
    # rate limit (20/s) would measure itself, not the platform. The stacks inherit this.
    os.environ["RX_RATE_LIMIT_PER_SECOND"] = "0"
    ensure_jars(progress=print)
    if args.child is not None:
        args.shape = shapes[0]
        args.child.write_text(json.dumps(one_run(rates[0], args, args.label)))
        return 0
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="rx-load-code-") as code:
        variants: dict[str, str | None] = {}
        if args.ref:
            for name, rev in [("tree", None), *((r, r) for r in args.ref)]:
                path, digest = snapshot(rev, Path(code) / name.replace("/", "_") / "src")
                variants[name] = path
                print(f"{name}: code frozen (sources digest {digest})")
        else:
            variants["tree"] = None
        # A variant is a revision in a shape; both named when there is more than one.
        runs_of = {
            (name if len(shapes) == 1 else shape if name == "tree" else f"{name} {shape}"): (
                name,
                shape,
            )
            for name in variants
            for shape in shapes
        }
        results = {key: {rate: [] for rate in rates} for key in runs_of}
        for n in range(args.rounds):
            for rate in rates:
                order = list(runs_of) if n % 2 == 0 else list(reversed(runs_of))
                for key in order:
                    name, args.shape = runs_of[key]
                    label = f"round {n + 1}/{args.rounds} {key} {rate:g}/s"
                    pythonpath = variants[name]
                    try:
                        run = (
                            one_run(rate, args, label)
                            if pythonpath is None
                            else run_variant(pythonpath, rate, args, label, Path(code))
                        )
                    except (subprocess.CalledProcessError, StackError, PostgresError) as exc:
                        # A stack that would not start on a busy machine: that run is missing
                        # from the medians, the others still count.
                        print(f"{label}: run failed ({exc}); left out", flush=True)
                        continue
                    results[key][rate].append(run)
                    save(results, args.out)  # a long session keeps what it measured so far
    results = {v: {r: runs for r, runs in by.items() if runs} for v, by in results.items()}
    print("\nmedians over rounds:\n" + table(results))
    save(results, args.out)
    chart(results, args.out / "load.png")
    print(f"wrote {args.out / 'load.png'} and {args.out / 'load.json'}")
    conserved = all(r["conserved"] for by in results.values() for rs in by.values() for r in rs)
    return 0 if conserved else 1


if __name__ == "__main__":
    sys.exit(main())
