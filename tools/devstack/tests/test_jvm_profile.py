"""Profiling a JVM with the JDK's own tools: Flight Recorder samples as collapsed stacks, and
CPU per thread pool. One test starts a small JVM (a few seconds)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack.jars import java_executable
from devstack.jvm_profile import (
    ProfileError,
    collapse,
    cpu_by_pool,
    execution_samples,
    flight_recording,
    jcmd,
    parse_thread_names,
    thread_cpu,
    thread_names,
)

DATA = Path(__file__).with_name("data")

# A thread named like a Kafka pool spins in a method of its own; the main thread sleeps.
SPIN = """
public class Spin {
    static volatile long sink;
    static void burn() { long x = 0; for (int i = 0; i < 2_000_000; i++) x += i * 31L; sink = x; }
    public static void main(String[] args) throws Exception {
        Thread t = new Thread(() -> { while (true) burn(); }, "spinner-7");
        t.setDaemon(true);
        t.start();
        System.out.println("ready");
        Thread.sleep(60_000);
    }
}
"""


def test_broker_samples_collapse_into_stacks_rooted_at_their_thread_pool() -> None:
    """A real ``jfr print --json --stack-depth 5`` of a development broker's execution samples
    under load (six events kept, one of them twice): one line per distinct stack, root first,
    counted, most frequent first."""
    printed = (DATA / "jfr_execution_samples.json").read_text()

    lines = collapse(printed).splitlines()

    stacks = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in lines}
    counts = [int(line.rsplit(" ", 1)[1]) for line in lines]
    assert counts == sorted(counts, reverse=True)
    assert sum(counts) == printed.count('"jdk.ExecutionSample"') == 7
    assert counts[0] == 2 and len(counts) == 6
    for stack in stacks:
        frames = stack.split(";")
        assert not any(ch.isdigit() for ch in frames[0]), f"pool, not thread: {frames[0]}"
        assert all("/" not in frame for frame in frames), "class names with dots"
        assert all("+0x" not in frame for frame in frames), "lambdas without their address"
    assert any(";kafka." in stack or ";org.apache.kafka." in stack for stack in stacks)


def test_samples_without_a_stack_are_left_out() -> None:
    printed = (
        '{"recording": {"events": [{"type": "jdk.ExecutionSample", "values": '
        '{"sampledThread": {"javaName": "x"}, "stackTrace": null}}]}}'
    )

    assert collapse(printed) == ""
    assert collapse("") == ""


def test_thread_dump_names_map_os_thread_ids_in_hex_and_decimal() -> None:
    dump = (
        '"data-plane-kafka-request-handler-0" #63 daemon prio=5 os_prio=0 cpu=12.50ms '
        "elapsed=30.10s tid=0x00007f nid=0x6a2b waiting on condition  [0x00007f]\n"
        '"VM Thread" os_prio=0 cpu=40.00ms elapsed=31.00s tid=0x00007e nid=27001 runnable\n'
    )

    assert parse_thread_names(dump) == {
        0x6A2B: "data-plane-kafka-request-handler-0",
        27001: "VM Thread",
    }


@pytest.fixture
def spinning_jvm(tmp_path: Path) -> Iterator[int]:
    """A JVM (its working directory not the test's) with one busy thread, ``spinner-7``."""
    source = tmp_path / "Spin.java"
    source.write_text(SPIN)
    jvm_dir = tmp_path / "jvm"
    jvm_dir.mkdir()
    process = subprocess.Popen(
        [java_executable(), "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", str(source)],
        cwd=jvm_dir,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield process.pid
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a_recording_to_a_relative_path_lands_where_the_caller_meant_and_shows_the_busy_thread(
    spinning_jvm: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = thread_cpu(spinning_jvm)

    with flight_recording(spinning_jvm, Path("out/spin.jfr")) as recording:
        time.sleep(1)

    assert recording == tmp_path / "out" / "spin.jfr"
    assert recording.stat().st_size > 0
    stacks = collapse(execution_samples(recording))
    assert any(
        line.startswith("spinner-N;") and "Spin.burn" in line for line in stacks.splitlines()
    )
    pools = cpu_by_pool(before, thread_cpu(spinning_jvm), thread_names(spinning_jvm))
    assert next(iter(pools)) == "spinner-N"


def test_a_refused_jfr_command_raises_with_the_jvms_own_words(spinning_jvm: int) -> None:
    """jcmd exits 0 when the JVM refuses a command: the refusal must not pass as success."""
    with pytest.raises(ProfileError, match="rx-never-started"):
        jcmd(spinning_jvm, "JFR.stop", "name=rx-never-started", expect="Stopped recording")
    assert os.path.exists(f"/proc/{spinning_jvm}"), "the JVM lives on"
