"""Where a JVM's CPU goes (the development broker's, mostly): Java Flight Recorder's execution
samples as collapsed stacks for a flame graph, and the CPU time of each of its threads under
the names the JVM gives them.

The JDK's own tools do the work: ``jcmd`` (JFR.start / JFR.stop, Thread.print) and ``jfr``.
They are taken from the JDK whose ``java`` runs the broker, so the attaching tool and the JVM
are the same version.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

from .errors import BrokerError
from .jars import java_executable

_TICK = os.sysconf("SC_CLK_TCK")


class ProfileError(BrokerError):
    """A JDK tool could not record or read the JVM; the message holds the tool's own output."""


def jdk_tool(name: str) -> str:
    """``name`` (jcmd, jfr) from the JDK of ``java_executable()``, else from PATH."""
    beside = Path(java_executable()).resolve().parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ProfileError(f"no {name} beside {java_executable()} nor on PATH (a JDK has it)")
    return found


def jcmd(pid: int, *command: str, expect: str | None = None, timeout: float = 60) -> str:
    """Run ``jcmd <pid> <command…>`` and return its output. jcmd exits 0 when the JVM refused
    the command, so ``expect`` (text of the success message) is checked as well."""
    argv = [jdk_tool("jcmd"), str(pid), *command]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProfileError(f"{' '.join(argv)}: no answer in {timeout:g} s") from exc
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0 or (expect is not None and expect not in output):
        raise ProfileError(f"{' '.join(argv)} (exit {done.returncode}): {output[-2000:]}")
    return output


@contextlib.contextmanager
def flight_recording(
    pid: int, path: Path, *, name: str = "rx-profile", settings: str = "profile"
) -> Iterator[Path]:
    """Record JVM ``pid`` with Flight Recorder while the block runs; the recording is in
    ``path`` afterwards. The path is made absolute here: the JVM resolves a relative one against
    its own working directory, not the caller's."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    jcmd(
        pid,
        "JFR.start",
        f"name={name}",
        f"settings={settings}",
        f"filename={path}",
        expect="Started recording",
    )
    try:
        yield path
    finally:
        jcmd(pid, "JFR.stop", f"name={name}", expect="Stopped recording")
    if not path.is_file():
        raise ProfileError(f"Flight Recorder stopped but {path} was not written")


def execution_samples(recording: Path, stack_depth: int = 96) -> str:
    """``jfr print --json`` of the recording's execution samples."""
    argv = [jdk_tool("jfr"), "print", "--json", "--stack-depth", str(stack_depth)]
    argv += ["--events", "jdk.ExecutionSample", str(recording)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ProfileError(f"{' '.join(argv)} (exit {done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def thread_group(name: str) -> str:
    """A thread's name with its numbers as ``N``: the pool it belongs to
    (``data-plane-kafka-request-handler-N``)."""
    return re.sub(r"\d+", "N", name)


def collapse(printed: str) -> str:
    """``jfr print --json`` execution samples as collapsed stacks, one line per distinct stack
    (root first, ``;``-separated, then its count), the sampled thread's pool as the root frame,
    most frequent first. Samples without a stack are left out."""
    if not printed.strip():
        return ""
    stacks: Counter[str] = Counter()
    for event in json.loads(printed)["recording"]["events"]:
        values = event["values"]
        trace = values.get("stackTrace") or {}
        frames = trace.get("frames") or []
        if not frames:
            continue
        thread = (values.get("sampledThread") or {}).get("javaName") or "?"
        names = [thread_group(thread)]
        if trace.get("truncated"):
            names.append("[truncated]")
        names += [_frame_name(frame) for frame in reversed(frames)]
        stacks[";".join(names)] += 1
    return "".join(f"{stack} {n}\n" for stack, n in stacks.most_common())


def _frame_name(frame: Mapping[str, object]) -> str:
    method = frame.get("method")
    if not isinstance(method, Mapping):
        return "?"
    owner = method.get("type")
    type_name = owner.get("name") if isinstance(owner, Mapping) else None
    # Class names come as jdk/internal/misc/Unsafe; a semicolon would split the frame; hidden
    # classes (lambdas) carry an address that differs per run: Foo$$Lambda$12+0x7f…/123.
    name = f"{str(type_name or '?').replace('/', '.')}.{method.get('name')}"
    return _HIDDEN_CLASS_SUFFIX.sub("", name).replace(";", ":")


_HIDDEN_CLASS_SUFFIX = re.compile(r"(\$\d+)?\+0x[0-9a-fA-F]+([/.]\d+)?")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each live thread of ``pid``, by thread id, from /proc."""
    seconds: dict[int, float] = {}
    for stat in Path(f"/proc/{pid}/task").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            seconds[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / _TICK
    return seconds


_THREAD_LINE = re.compile(r'^"(?P<name>.*)" .*\bnid=(?P<nid>0x[0-9a-fA-F]+|\d+)', re.MULTILINE)


def parse_thread_names(dump: str) -> dict[int, str]:
    """Thread id → name from a ``jcmd <pid> Thread.print`` dump (``nid`` is the OS thread id,
    in hex up to JDK 18, in decimal after)."""
    return {int(m["nid"], 0): m["name"] for m in _THREAD_LINE.finditer(dump)}


def thread_names(pid: int) -> dict[int, str]:
    """Thread id → the JVM's name for it (Java threads, GC, compiler and VM threads)."""
    return parse_thread_names(jcmd(pid, "Thread.print", expect="Full thread dump"))


def cpu_by_pool(
    before: Mapping[int, float], after: Mapping[int, float], names: Mapping[int, str]
) -> dict[str, float]:
    """CPU seconds between two ``thread_cpu`` readings, summed per thread pool
    (``thread_group`` of each thread's name; threads the dump did not name as ``tid-N``),
    busiest first."""
    pools: dict[str, float] = {}
    for tid, spent in after.items():
        pool = thread_group(names.get(tid, f"tid-{tid}"))
        pools[pool] = pools.get(pool, 0.0) + spent - before.get(tid, 0.0)
    return dict(sorted(pools.items(), key=lambda item: -item[1]))
