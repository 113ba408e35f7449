"""What the machine did while a benchmark measured: CPU time of this process, of processes
the benchmark started (a broker), and of everything else (other people's work on a shared
machine), from /proc (Linux)."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_seconds(pid: int) -> float:
    """CPU time of a process's live threads in nanoseconds' resolution (``schedstat``), for
    the few milliseconds an idle process spends, which the clock tick of :func:`cpu_seconds`
    (10 ms) blurs."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def machine_busy_seconds() -> float:
    """CPU time spent by everything on the machine (including steal), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Cores used while the ``with`` block ran (1.0 = one core busy all the time): by this
    process (``self``), by the processes in ``helpers`` (e.g. the broker this benchmark
    started) and by every other process on the machine (``other``)."""

    def __init__(self, helpers: Iterable[int] = ()) -> None:
        self.helpers = [pid for pid in helpers if Path(f"/proc/{pid}").exists()]
        self.cores: dict[str, float] = {}

    def _helpers_cpu(self) -> float:
        total = 0.0
        for pid in self.helpers:
            with contextlib.suppress(FileNotFoundError):  # it stopped (a broker never does)
                total += cpu_seconds(pid)
        return total

    def __enter__(self) -> CpuMeter:
        self._wall = time.perf_counter()
        self._own = time.process_time()
        self._helpers = self._helpers_cpu()
        self._busy = machine_busy_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        wall = time.perf_counter() - self._wall
        own = time.process_time() - self._own
        helpers = self._helpers_cpu() - self._helpers
        other = machine_busy_seconds() - self._busy - own - helpers
        self.cores = {
            "self": round(own / wall, 2),
            "helpers": round(helpers / wall, 2),
            "other": round(max(other, 0.0) / wall, 2),
        }

    def describe(self) -> str:
        return (
            f"CPU: this process {self.cores['self']:.2f} cores, broker "
            f"{self.cores['helpers']:.2f}, other processes {self.cores['other']:.2f}"
        )


def wait_for_quiet(below: float, patience: float, label: str = "") -> float:
    """Wait until the rest of the machine (everything but this process) uses fewer than
    ``below`` cores over 2 s, for at most ``patience`` seconds; then measure regardless.
    Returns the last reading (cores), for the record."""
    started = time.perf_counter()
    while True:
        busy, own = machine_busy_seconds(), time.process_time()
        time.sleep(2)
        load = (machine_busy_seconds() - busy - (time.process_time() - own)) / 2
        waited = time.perf_counter() - started
        if load < below or waited >= patience:
            if waited > 3:
                print(
                    f"  {label} waited {waited:.0f} s for a quiet machine; others use {load:.2f} cores"
                )
            return round(load, 2)


def add_quiet_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet-below`` and ``--quiet-patience``, for :func:`wait_for_quiet`."""
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.5,
        help="before each measurement wait until other processes use fewer cores than this ...",
    )
    parser.add_argument(
        "--quiet-patience", type=float, default=60, help="... for at most this many seconds"
    )


def loop_seconds(n: int = 10_000_000) -> float:
    """CPU seconds of a pure-Python loop of ``n`` additions: how fast this machine runs the
    interpreter, so figures from different machines can be told apart."""
    started, total = time.process_time(), 0
    for i in range(n):
        total += i
    return time.process_time() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=loop_seconds.__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    runs = sorted(loop_seconds() for _ in range(rounds))
    print(f"ten million additions: {runs[len(runs) // 2]:.2f} s of CPU (median of {rounds})")
