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
group over time, the load generator's own lateness, and the conservation verdict. A rate is
held when >= 95% of the offered referrals were accepted within the load window, the API p99 is
under --p99-ms, the lag at the end of the load is under one second's worth of events, and
everything is conserved. Medians over --rounds. Chart and numbers go to --out.

    .venv/bin/python bench/load.py [--rates 10,20,40] [--duration 60] [--rounds 1]
        [--think 0.5,3] [--p99-ms 500] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
from devstack.providers import Tokens
from devstack.stack import DEFAULT_PORTS, Stack
from devstack.topics import ensure_topics
from load_observe import AuditWatcher, LagSampler
from rx_contracts.topics import all_topics

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


def start_stack(workdir: Path, exits: ExitStack) -> tuple[Broker, Stack]:
    broker_port, controller_port = free_ports(2)
    broker = Broker(workdir / "kafka", port=broker_port, controller_port=controller_port)
    broker.start()
    exits.callback(broker.stop)
    ensure_topics(broker.bootstrap_servers, all_topics())
    ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
    stack = Stack(workdir / "stack", broker.bootstrap_servers, ports=ports, group_prefix="load-")
    exits.callback(stack.stop)
    stack.start(timeout=120)
    return broker, stack


def one_run(rate: float, args: argparse.Namespace, label: str) -> dict[str, Any]:
    """A fresh stack, --duration s of load at ``rate``, drain, conservation check."""
    with (
        tempfile.TemporaryDirectory(prefix="rx-load-", ignore_cleanup_errors=True) as tmp,
        ExitStack() as exits,
    ):
        print(f"{label}: starting broker and stack …", flush=True)
        broker, stack = start_stack(Path(tmp), exits)
        tokens = Tokens(stack.url("issuer"))
        lift_capacities(stack, tokens)
        groups = [f"load-{s}" for s in ("referrals", "routing", "audit")]
        lag = LagSampler(broker.bootstrap_servers, groups)
        audit = AuditWatcher(stack.url("audit"), tokens.get("ops", "audit"))
        config = LoadConfig(rate=rate, think=args.think, seed=hash(label) & 0xFFFF)
        endpoints = Endpoints(stack.url("referrals"), stack.url("issuer"), broker.bootstrap_servers)
        load = LoadDriver(endpoints, config, tokens=tokens)
        audit.start()
        lag.start()
        exits.callback(lag.stop)
        exits.callback(audit.stop)
        load.start()
        exits.callback(load.close)
        loadavg_before = os.getloadavg()[0]
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < args.duration:
            time.sleep(1)  # progress ticks; the load runs in its own thread
            print(f"\r{label}: {progress(load, lag, elapsed)}", end="", flush=True)
        load.stop_arrivals()
        load_end = time.monotonic()
        loadavg = (loadavg_before, os.getloadavg()[0])
        print(f"\n{label}: load stopped; journeys finishing, pipeline draining …", flush=True)
        check = ConservationCheck(
            Databases.sqlite_in(Path(tmp) / "stack"),
            verify_with_api(
                stack.url("audit"), {"Authorization": f"Bearer {tokens.get('ops', 'audit')}"}
            ),
            bootstrap_servers=broker.bootstrap_servers,
        )
        load.wait_idle(args.drain_timeout)
        report = check.wait(load.accepted(), timeout=args.drain_timeout, ready=load.idle)
        drained = time.monotonic() - load_end
        print(f"{label}: drained in {drained:.0f} s\n{report.summary()}", flush=True)
        result = summarise(
            rate, args, load.journeys, started, load_end, lag, audit, report, drained
        )
        return {**result, "loadavg_1m": loadavg}


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
    p99 = pct(api, 99)
    held = (
        throughput >= 0.95 * rate
        and p99 is not None
        and p99 < args.p99_ms
        and lag_at_end < rate * 3  # three streams' worth of one second's events
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
        "lag_after_drain": end_lag,
        "lag": [(t - started, lags) for t, lags in lag.samples],
        "completed": sum(1 for j in journeys if any(s.startswith("complete") for s in j.steps)),
        "rejections": sum(1 for j in journeys for s in j.steps if s.startswith("reject")),
        "errors": [e for j in journeys for e in j.errors][:20],
        "drain_s": drained,
        "conserved": report.ok,
        "conservation": report.summary(),
        "held": held,
    }


def median_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        if value is not None:
            values.append(float(value))
    return statistics.median(values) if values else None


def ms(runs: list[dict[str, Any]], *path: str) -> str:
    value = median_of(runs, *path)
    return "-" if value is None else f"{value:.0f}"


def table(results: dict[float, list[dict[str, Any]]]) -> str:
    head = (
        f"{'rate/s':>7} {'201/s':>7} {'API p50':>8} {'p99':>7} {'→provider p50':>14} "
        f"{'p99':>7} {'→audit p50':>11} {'p99':>7} {'lag@end':>8} {'conserved':>9} {'held':>5}"
    )
    lines = [head]
    for rate, runs in results.items():
        lines.append(
            f"{rate:>7g} {median_of(runs, 'throughput') or 0:>7.1f} {ms(runs, 'api_ms', 'p50'):>8} "
            f"{ms(runs, 'api_ms', 'p99'):>7} {ms(runs, 'to_provider_ms', 'p50'):>14} "
            f"{ms(runs, 'to_provider_ms', 'p99'):>7} {ms(runs, 'to_audit_ms', 'p50'):>11} "
            f"{ms(runs, 'to_audit_ms', 'p99'):>7} "
            f"{median_of(runs, 'lag_at_end_of_load') or 0:>8.0f} "
            f"{'yes' if all(r['conserved'] for r in runs) else 'NO':>9} "
            f"{'yes' if all(r['held'] for r in runs) else 'no':>5}"
        )
    return "\n".join(lines)


def chart(results: dict[float, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = list(results)
    fig, (thr, lat, lag) = plt.subplots(1, 3, figsize=(16, 4.8))
    thr.plot(rates, rates, "k:", label="offered")
    thr.plot(rates, [median_of(results[r], "throughput") for r in rates], "o-", label="accepted")
    thr.set(xlabel="offered referrals/s", ylabel="referrals/s", title="Throughput")
    thr.legend()
    for key, label in (
        ("api_ms", "API"),
        ("to_provider_ms", "→ provider topic"),
        ("to_audit_ms", "→ audit log"),
    ):
        for p, style in (("p50", "o-"), ("p99", "s--")):
            lat.plot(
                rates, [median_of(results[r], key, p) for r in rates], style, label=f"{label} {p}"
            )
    lat.set(
        xlabel="offered referrals/s",
        ylabel="ms (from scheduled POST)",
        yscale="log",
        title="Latency (medians over rounds)",
    )
    lat.legend(fontsize=7)
    for rate in rates:
        run = results[rate][0]
        xs = [t for t, _ in run["lag"]]
        lag.plot(xs, [sum(lags.values()) for _, lags in run["lag"]], label=f"{rate:g}/s")
    lag.set(
        xlabel="seconds since the load started",
        ylabel="records behind (all groups)",
        title="Consumer lag over time (first round)",
    )
    lag.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10,20,40", help="referrals/s, comma-separated")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load per run")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--think", default="0.5,3", help="provider think time range (s)")
    parser.add_argument("--p99-ms", type=float, default=500, help="API p99 for 'held'")
    parser.add_argument("--drain-timeout", type=float, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.think = tuple(float(x) for x in args.think.split(","))
    rates = [float(r) for r in args.rates.split(",")]
    # Every referral comes from three practices and goes to a handful of teams: the per-client
    # rate limit (20/s) would measure itself, not the platform. The stacks inherit this.
    os.environ["RX_RATE_LIMIT_PER_SECOND"] = "0"
    ensure_jars(progress=print)
    results: dict[float, list[dict[str, Any]]] = {rate: [] for rate in rates}
    for n in range(args.rounds):
        for rate in rates:
            label = f"round {n + 1}/{args.rounds} {rate:g}/s"
            results[rate].append(one_run(rate, args, label))
    print("\nmedians over rounds:\n" + table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(
        json.dumps({str(r): runs for r, runs in results.items()}, indent=1)
    )
    chart(results, args.out / "load.png")
    print(f"wrote {args.out / 'load.png'} and {args.out / 'load.json'}")
    return 0 if all(run["conserved"] for runs in results.values() for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
