"""Same-run A/B measurement shared by the in-process benchmarks: the working tree against a git
revision, each measurement in a fresh subprocess on frozen sources, the variants alternated round
by round, medians and the tree's ratio to the revision.

A benchmark script calls ``freeze`` once, ``alternate`` with a function that runs one
measurement (usually ``run_child`` on the script itself with ``--child``), then ``summarise``.
Inside the child, ``drain`` times a consumer through a backlog and ``row_counts`` checks what
it stored.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from snapshot import snapshot


def freeze(ref: str | None, tmp: Path) -> dict[str, str]:
    """The code under test, frozen: ``tree`` (the working tree as it is now) and, with ``ref``,
    that git revision. Maps each variant's name to the PYTHONPATH that runs it."""
    variants: dict[str, str] = {}
    for name, rev in [("tree", None), *([(ref, ref)] if ref else [])]:
        variants[name], digest = snapshot(rev, tmp / name.replace("/", "_") / "src")
        print(f"{name}: sources frozen (digest {digest})", flush=True)
    return variants


def run_child(
    script: str, pythonpath: str, options: Sequence[str], spy: Sequence[str] = ()
) -> dict[str, Any]:
    """Run ``script --child options…`` in a fresh process with ``pythonpath`` first on the path
    (under ``spy``, a profiler's command line, if given) and return the JSON object it printed
    last; refuse a result measured on other code than the frozen copy."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    done = subprocess.run(
        [*spy, sys.executable, script, "--child", *options],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    # The last JSON line: a profiler prints its own lines after the child's.
    report = [line for line in done.stdout.splitlines() if line.startswith("{")][-1]
    result: dict[str, Any] = json.loads(report)
    if not any(result["code"].startswith(path) for path in pythonpath.split(os.pathsep)):
        raise RuntimeError(f"measured {result['code']}, not the frozen copy")
    return result


def alternate(
    variants: dict[str, str],
    rounds: int,
    run: Callable[[str], dict[str, Any]],
    metric: str,
    *,
    ref: str | None,
    unit: str = "µs",
    digits: int = 1,
    label: str = "",
    note: Callable[[dict[str, dict[str, Any]]], str] | None = None,
) -> list[dict[str, float]]:
    """``rounds`` rounds; in each, every variant measured once by ``run(pythonpath)`` (the order
    reversed every other round, so neither side always runs on a warmer machine). Prints a
    line per round and returns each round's ``metric`` by variant."""
    out: list[dict[str, float]] = []
    for n in range(rounds):
        order = list(variants) if n % 2 == 0 else list(reversed(variants))
        got = {name: run(variants[name]) for name in order}
        out.append({name: float(got[name][metric]) for name in variants})
        line = "  ".join(f"{name} {out[-1][name]:.{digits}f} {unit}" for name in variants)
        if ref:
            line += f"  ratio tree/{ref} {out[-1]['tree'] / out[-1][ref]:.3f}"
        if note:
            line += f"  {note(got)}"
        print(f"round {n + 1}/{rounds}{label}: {line}", flush=True)
    return out


def summarise(
    rounds: list[dict[str, float]], ref: str | None, key: str, *, digits: int = 1
) -> tuple[dict[str, Any], str]:
    """Medians over the rounds by variant (under ``key``) and, with ``ref``, the median of the
    tree's ratios to it (``median_ratio``); with a line saying so."""
    variants = list(rounds[0])
    medians = {v: statistics.median(r[v] for r in rounds) for v in variants}
    summary: dict[str, Any] = {key: medians}
    line = ", ".join(f"{v} {value:.{digits}f}" for v, value in medians.items())
    if ref:
        summary["median_ratio"] = statistics.median(r["tree"] / r[ref] for r in rounds)
        line += f"; ratio tree/{ref} {summary['median_ratio']:.3f}"
    return summary, line


def per_route_table(
    script: str, args: Any, names: Sequence[str], total: str, *, prefix: str, label: str
) -> None:
    """``script --child`` (CPU µs per request by route, ``total`` among them) for the tree and
    ``args.ref`` in fresh processes, ``args.rounds`` rounds alternating, a line per round; then
    a Markdown table of the medians by route with the median of the tree's ratios."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        variants = freeze(args.ref, Path(tmp))
        options = ["--n", str(args.n), "--workdir", tmp]
        rounds: list[dict[str, dict[str, float]]] = []
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            got = {v: run_child(script, variants[v], options)["us"] for v in order}
            rounds.append(got)
            line = "  ".join(f"{v} {got[v][total]:.1f}" for v in variants)
            if args.ref:
                line += f"  ratio tree/{args.ref} {got['tree'][total] / got[args.ref][total]:.3f}"
            print(f"round {r + 1}/{args.rounds}: µs {label} {line}", flush=True)
    print(f"\nCPU µs per request, medians over {args.rounds} rounds of {args.n:,} per route:")
    print("| route | " + " | ".join(variants) + (" | ratio |" if args.ref else " |"))
    print("|---" * (len(variants) + 1 + bool(args.ref)) + "|")
    for name in names:
        medians = [statistics.median(r[v][name] for r in rounds) for v in variants]
        row = f"| {name} | " + " | ".join(f"{m:.1f}" for m in medians)
        if args.ref:
            ratio = statistics.median(r["tree"][name] / r[args.ref][name] for r in rounds)
            row += f" | {ratio:.3f}"
        print(row + " |")


def write_results(path: Path, summary: dict[str, Any], rounds: object) -> None:
    path.write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=2) + "\n")


def drain(consumer: Any, count: int) -> tuple[int, float]:
    """Consume a backlog of ``count`` records with ``consumer.consume_once``; the first batch
    (statement compilation, first reads) is not timed. Returns the records timed and the CPU
    seconds they took (this process's CPU, not wall time on a shared machine)."""
    first = consumer.consume_once(0)
    handled, started = first.applied, time.process_time()
    while handled < count:
        result = consumer.consume_once(0)
        if not result.applied:
            raise RuntimeError(f"stopped after {handled} of {count} records: {result}")
        handled += result.applied
    return count - first.applied, time.process_time() - started


def row_counts(engine: Any, tables: Iterable[str]) -> dict[str, int]:
    """How many rows each of ``tables`` holds."""
    from sqlalchemy import text

    with engine.connect() as conn:
        return {
            name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one() for name in tables
        }
