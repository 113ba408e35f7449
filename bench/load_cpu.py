"""What each process of the stack costs while bench/load.py runs: CPU time per process group
from /proc (Linux), and profiles of the busiest ones (py-spy for Python, Java Flight Recorder
for the broker), drawn as flame graphs (``flamegraph.py``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from flamegraph import write_svg
from pyspy import print_heaviest

TICK = os.sysconf("SC_CLK_TCK")
BROKER = "kafka-broker"


def group_cpu(leaders: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each process group: every live member, plus
    what members that already exited left to their reaped parents (cutime, cstime). Each
    process of the stack is started in a session of its own, so its group is its pid."""
    by_group: dict[int, float] = dict.fromkeys(leaders.values(), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            group = int(fields[2])
            if group in by_group:
                ticks = int(fields[11]) + int(fields[12])
                if int(stat.parent.name) == group:
                    ticks += int(fields[13]) + int(fields[14])
                by_group[group] += ticks / TICK
    return {name: by_group[pid] for name, pid in leaders.items()}


class CpuLedger:
    """Named readings of every process group's CPU time; differences between two of them."""

    def __init__(self, leaders: Mapping[str, int]) -> None:
        self.leaders = dict(leaders)
        self.marks: dict[str, tuple[float, dict[str, float], float]] = {}

    def mark(self, name: str) -> None:
        """Read every group's CPU now (and this process's own, the load generator's)."""
        self.marks[name] = (time.monotonic(), group_cpu(self.leaders), time.process_time())

    def between(self, first: str, last: str) -> tuple[float, dict[str, float], float]:
        """Wall seconds, CPU seconds per process, and the generator's CPU seconds."""
        t0, cpu0, own0 = self.marks[first]
        t1, cpu1, own1 = self.marks[last]
        return t1 - t0, {n: cpu1[n] - cpu0[n] for n in cpu1}, own1 - own0


class Profiler:
    """Records the ``top`` busiest processes for ``duration`` seconds, in a thread of its own:
    Python processes with py-spy (the thread holding the GIL), the broker with Java
    Flight Recorder. Writes ``<name>.collapsed.txt`` and ``<name>.svg`` to ``out``."""

    def __init__(self, leaders: Mapping[str, int], out: Path, top: int, duration: float) -> None:
        self.leaders, self.out, self.top, self.duration = dict(leaders), out, top, duration
        self.written: list[Path] = []
        self.keep_recording = False  # the broker's .jfr, for Mission Control or `jfr print`
        self._thread: threading.Thread | None = None

    def start(self, busiest: list[str]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        chosen = busiest[: self.top]
        print(f"profiling {', '.join(chosen)} for {self.duration:g} s", flush=True)
        self._thread = threading.Thread(target=self._run, args=(chosen,), daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(self.duration + 120)

    def _run(self, names: list[str]) -> None:
        jobs = [
            threading.Thread(target=self._jfr if name == BROKER else self._pyspy, args=(name,))
            for name in names
        ]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join()

    def _pyspy(self, name: str) -> None:
        raw = self.out / f"{name}.collapsed.txt"
        py_spy = Path(sys.executable).with_name("py-spy")
        done = subprocess.run(
            [
                str(py_spy if py_spy.exists() else "py-spy"),
                "record",
                "--pid",
                str(self.leaders[name]),
                "--duration",
                str(int(self.duration)),
                "--rate",
                "100",
                "--gil",  # the thread running Python: where CPU goes (idle waits left out)
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(raw),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not raw.exists():
            print(f"py-spy on {name} failed: {done.stderr[-500:]}", flush=True)
            return
        self._render(name, raw)

    def _jfr(self, name: str) -> None:
        """The broker: Flight Recorder's execution samples (Java code running), and the CPU of
        each of its thread pools over the same window (the JIT compiler, the collector and
        threads in native code are not in the samples)."""
        # Imported here: with --ref, an older revision's devstack (without it) comes first.
        from devstack.jvm_profile import (
            ProfileError,
            collapse,
            cpu_by_pool,
            execution_samples,
            flight_recording,
            thread_cpu,
            thread_names,
        )

        pid = self.leaders[name]
        try:
            before = thread_cpu(pid)
            with flight_recording(pid, self.out / f"{name}.jfr", name="rx-load") as recording:
                time.sleep(self.duration)
            pools = cpu_by_pool(before, thread_cpu(pid), thread_names(pid))
            printed = execution_samples(recording)
            if not self.keep_recording:
                recording.unlink()  # megabytes of binary: the stacks and pools below are kept
        except ProfileError as exc:
            print(f"JFR on {name} failed: {exc}", flush=True)
            return
        threads = self.out / f"{name}.threads.txt"
        threads.write_text(describe_pools(pools, self.duration))
        self.written.append(threads)
        raw = self.out / f"{name}.collapsed.txt"
        raw.write_text(collapse(printed))
        self._render(name, raw)
        print(f"\n== {name}: CPU by thread pool\n{threads.read_text()}", end="", flush=True)

    def _render(self, name: str, raw: Path) -> None:
        svg = raw.with_name(f"{name}.svg")
        write_svg(raw, svg, title=f"{name}: CPU samples under load")
        self.written += [raw, svg]
        print(f"\n== {name}", end="")
        print_heaviest(raw, top=24)


def describe_pools(pools: Mapping[str, float], seconds: float, top: int = 30) -> str:
    """CPU per thread pool over a window, busiest first: cores and share of the process."""
    total = sum(pools.values()) or 1.0
    lines = [f"{'thread pool':<60} {'cores':>7} {'share':>6}"]
    for pool, spent in sorted(pools.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"{pool:<60} {spent / seconds:>7.4f} {spent / total:>6.1%}")
    lines.append(f"{'all threads':<60} {total / seconds:>7.4f}")
    return "\n".join(lines) + "\n"
