"""The idle stack: CPU and wake-ups of every process while nothing happens (issue 21).

Per round and variant (alternating order): a fresh broker and stack (``load.start_stack``),
--settle s after every process is ready (start-up work: the broker's JIT, group joins), then
over --idle s each process group's CPU time and its threads' voluntary context switches
(wake-ups: a thread that sleeps on a timer or waits for a socket switches out once per wake-up).
Both come from /proc per thread (``schedstat``, in nanoseconds, so the few milliseconds an
idle process spends are not lost to the clock tick). With --ref each revision's code is frozen
(``snapshot.py``) and run in a child process with that code first on PYTHONPATH, as
``load.py --ref`` does; the ratio is the median over rounds of a variant's total against the
working tree's in the same round.

    .venv/bin/python bench/stack_idle.py [--rounds 2] [--settle 30] [--idle 30] [--ref main]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from devstack.broker import ensure_jars
from load import start_stack
from load_cpu import BROKER
from snapshot import snapshot

ROOT = Path(__file__).resolve().parent.parent
TREE = "tree"


def group_counters(leaders: dict[str, int]) -> dict[str, tuple[float, int]]:
    """Per process group: CPU seconds and voluntary context switches, summed over the live
    threads of its live members."""
    names = {pid: name for name, pid in leaders.items()}
    totals = {name: (0.0, 0) for name in leaders}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            group = int(stat.read_text().rsplit(")", 1)[1].split()[2])
            if group not in names:
                continue
            cpu, switches = totals[names[group]]
            for task in (stat.parent / "task").iterdir():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    cpu += int((task / "schedstat").read_text().split()[0]) / 1e9
                    status = (task / "status").read_text()
                    line = status.split("voluntary_ctxt_switches:", 1)[1]
                    switches += int(line.split()[0])
            totals[names[group]] = (cpu, switches)
    return totals


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="rx-idle-", ignore_cleanup_errors=True) as tmp,
        ExitStack() as exits,
    ):
        broker, stack, others = start_stack(Path(tmp), exits)
        leaders = {name: proc.pid for name, proc in stack.procs.items()} | others
        leaders[BROKER] = broker.pid or 0
        time.sleep(args.settle)
        before, t0 = group_counters(leaders), time.monotonic()
        time.sleep(args.idle)
        after, t1 = group_counters(leaders), time.monotonic()
    seconds = t1 - t0
    cores = {n: (after[n][0] - before[n][0]) / seconds for n in leaders}
    wakeups = {n: (after[n][1] - before[n][1]) / seconds for n in leaders}
    return {"cores": cores, "wakeups": wakeups, "total": sum(cores.values())}


def run_child(pythonpath: str | None, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """One run in a child process whose code (services, devstack, broker settings) is the
    frozen variant's."""
    out = tmp / f"run-{time.monotonic_ns()}.json"
    argv = [sys.executable, __file__, "--child", str(out)]
    argv += ["--settle", str(args.settle), "--idle", str(args.idle)]
    env = dict(os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {}))
    subprocess.run(argv, env=env, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def report(runs: dict[str, list[dict[str, Any]]]) -> str:
    variants = [v for v in runs if runs[v]]
    names = sorted(
        {n for v in variants for r in runs[v] for n in r["cores"]},
        key=lambda n: -statistics.median(r["cores"].get(n, 0) for r in runs[variants[0]]),
    )
    head = f"{'process':<20}" + "".join(f"{v[:18]:>20}{'wake/s':>8}" for v in variants)
    lines = ["median cores idle (and wake-ups per second) over rounds", head]
    for n in names:
        cells = ""
        for v in variants:
            cores = statistics.median(r["cores"].get(n, 0) for r in runs[v])
            wake = statistics.median(r["wakeups"].get(n, 0) for r in runs[v])
            cells += f"{cores:>20.4f}{wake:>8.1f}"
        lines.append(f"{n:<20}{cells}")
    totals = "".join(
        f"{statistics.median(r['total'] for r in runs[v]):>20.4f}{'':>8}" for v in variants
    )
    lines.append(f"{'total':<20}{totals}")
    for v in variants[1:]:
        ratios = [
            mine["total"] / tree["total"] for mine, tree in zip(runs[v], runs[TREE], strict=False)
        ]
        per_round = " ".join(f"{r:.2f}" for r in ratios)
        lines.append(f"{v}: total / {TREE}'s in the same round: {per_round}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=30, help="seconds after start-up")
    parser.add_argument("--idle", type=float, default=30, help="seconds measured")
    parser.add_argument("--ref", action="append", default=[], help="also measure this revision")
    parser.add_argument("--out", type=Path, help="every run as JSON")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    ensure_jars(progress=print)
    if args.child is not None:
        args.child.write_text(json.dumps(one_run(args)))
        return 0
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="rx-idle-code-") as code:
        variants: dict[str, str] = {}
        for name, rev in [(TREE, None), *((r, r) for r in args.ref)]:
            path, digest = snapshot(rev, Path(code) / name.replace("/", "_") / "src")
            variants[name] = path
            print(f"{name}: code frozen (sources digest {digest})", flush=True)
        runs = {name: [] for name in variants}
        for n in range(args.rounds):
            for name in list(variants) if n % 2 == 0 else list(reversed(variants)):
                run = run_child(variants[name], args, Path(code))
                runs[name].append(run | {"round": n})
                print(f"round {n + 1} {name}: {run['total']:.4f} cores idle", flush=True)
                if args.out:
                    args.out.write_text(json.dumps({"argv": sys.argv, "runs": runs}, indent=1))
    print("\n" + report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
