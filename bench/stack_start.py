"""Starting and stopping the local stack (``devstack.stack.Stack``), as every end-to-end and
fault test does, three ways taking turns in the same run on one broker:

- ``before``: the sequential start (the issuer until it answers, then the setup steps, then
  every process), each process compiling every module it imports (no bytecode to read, none
  written: PYTHONDONTWRITEBYTECODE with an empty PYTHONPYCACHEPREFIX);
- ``overlapped``: today's start (the issuer, the setup steps and the other services' processes
  at once; a service with setup steps once they are done), still without bytecode;
- ``now``: today's start reading the bytecode ``make setup`` compiles.

For each start: wall time of ``start()`` and of ``stop()``, and the CPU seconds every process
of the stack used from its start to its stop (reaped children: imports, migrations, start-up),
with the load average, since the machine is shared.

    .venv/bin/python bench/stack_start.py --rounds 3
    .venv/bin/python bench/stack_start.py --rounds 2 --replicas 2   # 2 processes per role
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from devstack.broker import Broker, ensure_jars
from devstack.ports import free_ports
from devstack.stack import (
    BALANCER,
    DEFAULT_PORTS,
    ISSUER,
    PROCESSES,
    SETUP_STEPS,
    Stack,
    StackError,
)
from devstack.topics import ensure_topics
from rx_contracts.topics import all_topics


class SequentialStack(Stack):
    """The start this replaced: nothing overlaps the issuer's start or the setup steps."""

    def _start(self, timeout: float) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.start_process(ISSUER)
        self._wait_healthy(ISSUER.name, self.url("issuer"), time.monotonic() + timeout)
        for step in SETUP_STEPS:
            with self.log_file(step.name).open("ab") as log:
                done = subprocess.run(
                    step.argv, env=self.env(step), stdout=log, stderr=log, timeout=timeout
                )
            if done.returncode != 0:
                raise StackError(f"{step.name} failed:\n{self.tail(step.name)}")
        for name, spec in self.processes().items():
            self.start_process(spec, name=name)
        if self.api_ports:
            self.start_process(BALANCER)
        deadline = time.monotonic() + timeout
        for name, spec in self.processes().items():
            if spec.is_api:
                self._wait_healthy(name, self.ops_url(name), deadline)
        if self.api_ports:
            for service in {spec.service for spec in PROCESSES if spec.is_api}:
                self._wait_healthy(BALANCER.name, self.url(service), deadline)


@contextlib.contextmanager
def _bytecode(read: bool, root: Path) -> Iterator[None]:
    """The stack's processes read the compiled bytecode, or find none and write none."""
    saved = {
        name: os.environ.get(name) for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    if not read:
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        os.environ["PYTHONPYCACHEPREFIX"] = str(root / "no-bytecode")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one(
    kind: type[Stack], root: Path, bootstrap: str, replicas: int, bytecode: bool
) -> tuple[float, float, float]:
    ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
    stack = kind(
        root / uuid.uuid4().hex[:8],
        bootstrap,
        ports=ports,
        group_prefix=f"bench-{uuid.uuid4().hex[:8]}-",
        replicas=replicas,
    )
    cpu = children_cpu()
    started = time.monotonic()
    with _bytecode(bytecode, root):
        stack.start(timeout=300)
    start_s = time.monotonic() - started
    stopped = time.monotonic()
    stack.stop()
    stop_s = time.monotonic() - stopped
    return start_s, stop_s, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    ensure_jars()
    with tempfile.TemporaryDirectory(prefix="rx-bench-stack-") as tmp:
        root = Path(tmp)
        broker = Broker(root / "kafka", *free_ports(2), heap="512m")
        broker.start(timeout=180)
        try:
            ensure_topics(broker.bootstrap_servers, all_topics())
            ways = (
                ("before", SequentialStack, False),
                ("overlapped", Stack, False),
                ("now", Stack, True),
            )
            figures: dict[str, list[tuple[float, float, float]]] = {w[0]: [] for w in ways}
            for round_ in range(1, args.rounds + 1):
                for label, kind, bytecode in ways:
                    start_s, stop_s, cpu_s = one(
                        kind, root, broker.bootstrap_servers, args.replicas, bytecode
                    )
                    figures[label].append((start_s, stop_s, cpu_s))
                    load = os.getloadavg()[0]
                    print(
                        f"round {round_} {label:>10}: start {start_s:5.1f} s, stop {stop_s:4.1f} s,"
                        f" CPU {cpu_s:5.1f} s (load {load:.1f})",
                        flush=True,
                    )
        finally:
            broker.stop()
    base = figures["before"]
    for label, rows in figures.items():
        print(
            f"{label:>10}: median start {statistics.median(s for s, _, _ in rows):5.1f} s,"
            f" stop {statistics.median(s for _, s, _ in rows):4.1f} s,"
            f" CPU {statistics.median(c for _, _, c in rows):5.1f} s"
        )
    for label, rows in figures.items():
        if label != "before":
            start = statistics.median(s for s, _, _ in rows) / statistics.median(
                s for s, _, _ in base
            )
            cpu = statistics.median(c for _, _, c in rows) / statistics.median(
                c for _, _, c in base
            )
            print(f"{label} / before: start {start:.2f}, CPU {cpu:.2f}")


if __name__ == "__main__":
    main()
