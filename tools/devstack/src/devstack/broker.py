"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) for dev and tests.

Runs Kafka from jars resolved from Maven Central (``infra/kafka/pom.xml``) with the local Java,
so neither Docker nor a Kafka download is needed: tests exercise the same broker code as
production instead of a fake.

CLI::

    python -m devstack.broker start  [--data-dir .run/kafka] [--port 9092]
    python -m devstack.broker status [--data-dir .run/kafka]
    python -m devstack.broker stop   [--data-dir .run/kafka]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import BrokerError, PortInUseError
from .jars import (
    KAFKA_VERSION,
    cache_dir,
    ensure_jars,
    java_executable,
    kafka_infra_dir,
    last_lines,
    read_text_or_none,
    repo_root,
)
from .ports import accepts_connections, free_ports, port_in_use
from .sasl import BrokerSecurity, redact_format_output
from .topics import TopicError, cluster_info

__all__ = [
    "KAFKA_VERSION",
    "Broker",
    "BrokerError",
    "PortInUseError",
    "cache_dir",
    "ensure_jars",
    "free_ports",
    "kafka_infra_dir",
    "port_in_use",
    "repo_root",
]

# Kafka's own JVM performance flags (bin/kafka-run-class.sh, KAFKA_JVM_PERFORMANCE_OPTS), for
# a production broker with a large heap on cores of its own.
KAFKA_JVM_FLAGS: tuple[str, ...] = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
# The development broker shares two cores with a dozen processes and keeps little in its heap:
# the serial collector has no concurrent GC threads working beside the application, and only
# the quick compiler (C1) runs: the optimising one (C2) spends minutes of CPU after every start
# on code that a broker carrying a few hundred records a second hardly needs faster
# (bench/RESULTS.md, "Cost per journey" and "API, relays and broker").
# No hsperfdata: the JVM samples its performance counters into a shared file every 50 ms for
# tools that list JVMs (jps); jcmd and Flight Recorder still attach by pid.
DEV_JVM_FLAGS: tuple[str, ...] = (
    "-server",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
)
_MIN_HEAP = "256m"
_LOG_TAIL_LINES = 40

# --------------------------------------------------------------------------- broker


class Broker:
    """One Kafka process in KRaft combined mode, owning ``data_dir``.

    ``data_dir`` holds ``server.properties``, ``broker.log``, ``broker.pid``, ``cluster.id`` and
    the Kafka log dir ``logs/``. Everything about a running broker is found through the pid
    file, so another process (the CLI) can check or stop a broker it did not start.

    With ``security`` the client listener needs SASL/SCRAM and ACLs decide the rest
    (``devstack.sasl``); without it the broker is PLAINTEXT and open, as tests mostly want.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        controller_port: int | None = None,
        heap: str = "1g",
        *,
        extra_config: Mapping[str, str] | None = None,
        security: BrokerSecurity | None = None,
        jvm_flags: Sequence[str] = DEV_JVM_FLAGS,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port if controller_port is not None else port + 1
        self.heap = heap
        self.extra_config = dict(extra_config or {})
        self.security = security
        self.jvm_flags = tuple(jvm_flags)
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return (
            f"Broker({str(self.data_dir)!r}, port={self.port}, "
            f"controller_port={self.controller_port})"
        )

    # paths ---------------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def kafka_log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def pid(self) -> int | None:
        """Pid of the running broker, or None (stale pid files are ignored)."""
        pid = self._read_pid()
        return pid if pid is not None and self._alive(pid) else None

    # lifecycle -----------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self, timeout: float = 60) -> None:
        """Start the broker and return once it serves metadata; raise ``BrokerError`` if not.

        Formats the log dir only on first use, so restarting on the same ``data_dir`` (also
        after ``kill()``) keeps all topics and records.
        """
        running = self.pid
        if running is not None:
            raise BrokerError(
                f"a broker is already running from {self.data_dir} (pid {running}); "
                "stop it first (python -m devstack.broker stop --data-dir …)"
            )
        for port, role in ((self.port, "client"), (self.controller_port, "controller")):
            if port_in_use(port):
                raise PortInUseError(
                    f"cannot start Kafka: {role} port 127.0.0.1:{port} is already in use by "
                    f"another process (find it with `ss -ltnp 'sport = :{port}'`, or choose "
                    "another port)"
                )
        lib = ensure_jars()  # before the clock starts: the first fetch may take a while
        java = java_executable()
        deadline = time.monotonic() + timeout
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)
        self._write_properties()
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        self._format_if_needed(java, lib)

        command = [
            java,
            f"-Xms{_initial_heap(self.heap)}",
            f"-Xmx{self.heap}",
            *self.jvm_flags,
            f"-Dlog4j2.configurationFile={kafka_infra_dir() / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            f"{lib}/*",
            "kafka.Kafka",
            str(self.properties_file),
        ]
        with self.log_file.open("ab") as log:
            log.write(
                f"\n=== devstack: starting Kafka {KAFKA_VERSION}: {' '.join(command)}\n".encode()
            )
            log.flush()
            self._process = subprocess.Popen(
                command,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal must not kill it mid-test
            )
        self.pid_file.write_text(f"{self._process.pid}\n")
        self._wait_until_ready(deadline, timeout, log_offset)

    def _wait_until_ready(self, deadline: float, timeout: float, log_offset: int) -> None:
        """Poll (bounded) until the broker answers a metadata request, or fail with the log."""
        assert self._process is not None
        last_error = "the client port never accepted a connection"
        while True:
            code = self._process.poll()
            if code is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    self._failure(f"Kafka exited with code {code} during startup", log_offset)
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise BrokerError(
                    self._failure(
                        f"Kafka was not ready within {timeout:g}s ({last_error})", log_offset
                    )
                )
            if accepts_connections(self.port):
                try:
                    cluster_info(
                        self.bootstrap_servers,
                        timeout=min(5.0, max(remaining, 0.5)),
                        auth=self.security.admin_auth if self.security else None,
                    )
                    return
                except TopicError as exc:
                    last_error = str(exc)
            time.sleep(min(0.2, max(remaining, 0.01)))

    def stop(self, timeout: float = 20) -> None:
        """Stop gracefully (SIGTERM: Kafka flushes and closes its logs), SIGKILL after timeout."""
        pid = self.pid
        if pid is None:
            self._forget()
            return
        self._signal(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            self._signal(pid, signal.SIGKILL)
            if not self._wait_gone(pid, 10):
                raise BrokerError(f"Kafka (pid {pid}) did not exit even after SIGKILL")
        self._forget()

    def kill(self) -> None:
        """SIGKILL right away, like a crash; ``start()`` afterwards recovers the same data."""
        pid = self.pid
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            if not self._wait_gone(pid, 10):
                raise BrokerError(f"Kafka (pid {pid}) did not exit after SIGKILL")
        self._forget()

    # helpers -------------------------------------------------------------------------------

    def _properties(self) -> dict[str, str]:
        port, cport = self.port, self.controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            # Static voters rather than a dynamic quorum: the controller port is not stored at
            # format time, so a restart on the same data dir may use different ports.
            "controller.quorum.voters": f"1@127.0.0.1:{cport}",
            "log.dirs": str(self.kafka_log_dir),
            # A single node can only ever hold one replica of anything.
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Fewer internal partitions (default 50 each) make first start and group joins faster.
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.num.partitions": "3",
            "num.partitions": "1",
            # Consumers join immediately instead of waiting 3s for more members.
            "group.initial.rebalance.delay.ms": "0",
            # Let tests use short session timeouts to see a dead consumer's partitions move fast.
            "group.min.session.timeout.ms": "1000",
            # After kill() the controller keeps the dead incarnation registered until its session
            # expires (default 9 s) and the restarted broker waits for that; 2 s is plenty on
            # one machine.
            "broker.session.timeout.ms": "2000",
            # At most half the session timeout (Kafka checks); the broker and its controller
            # share this process, so a heartbeat is only late when both are starved.
            "broker.heartbeat.interval.ms": "1000",
            # Misspelt topic names fail instead of silently creating empty topics.
            "auto.create.topics.enable": "false",
            # The log cleaner preallocates 128 MB of heap by default; 16 MB is plenty here.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            # One thread each: a development broker's requests are small and a long-polling
            # fetch waits in purgatory, not on a thread; fewer threads wake on their timers
            # (request handlers and network threads every 300 ms) and hand work over less.
            "num.network.threads": "1",
            "num.io.threads": "1",
            "group.coordinator.threads": "1",
            # The controller appends a no-op record to the metadata log this often to show it is
            # alive (default 500 ms), each one written and flushed: most of an idle broker's
            # work. One node has nobody to show it to.
            "metadata.max.idle.interval.ms": "5000",
        }
        if self.security is not None:
            props.update(self.security.properties(port, cport))
        props.update(self.extra_config)
        return props

    def _write_properties(self) -> None:
        lines = ["# Written by devstack.broker on every start; edits are overwritten."]
        lines += [f"{key}={value}" for key, value in self._properties().items()]
        # A secured broker's file holds its admin and controller passwords: owner only.
        self.properties_file.touch(mode=0o600)
        self.properties_file.chmod(0o600)
        self.properties_file.write_text("\n".join(lines) + "\n")

    def _format_if_needed(self, java: str, lib: Path) -> None:
        """Format the log dir once; a formatted dir is reused so restarts keep the data."""
        if (self.kafka_log_dir / "meta.properties").is_file():
            return
        cluster_id_file = self.data_dir / "cluster.id"
        cluster_id = read_text_or_none(cluster_id_file) or _random_cluster_id()
        cluster_id_file.write_text(cluster_id + "\n")
        command = [
            java,
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",  # short-lived JVM: skip the optimising compiler
            f"-Dlog4j2.configurationFile={kafka_infra_dir() / 'log4j2.properties'}",
            "-cp",
            f"{lib}/*",
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id,
            "--config",
            str(self.properties_file),
            "--ignore-formatted",
            *(self.security.format_arguments() if self.security else []),
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=120, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(
                f"formatting {self.kafka_log_dir} did not finish in {exc.timeout}s"
            ) from exc
        with self.log_file.open("a") as log:
            log.write(f"=== devstack: formatting {self.kafka_log_dir} (cluster id {cluster_id})\n")
            log.write(redact_format_output(result.stdout + result.stderr))
        if result.returncode != 0:
            raise BrokerError(
                f"formatting the Kafka log dir {self.kafka_log_dir} failed "
                f"(exit {result.returncode}):\n"
                + last_lines(redact_format_output(result.stdout + result.stderr), _LOG_TAIL_LINES)
            )

    def _failure(self, headline: str, log_offset: int) -> str:
        """Error text with the tail of this attempt's part of broker.log."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(log_offset)
                text = log.read().decode(errors="replace")
        except OSError as exc:
            text = f"(cannot read {self.log_file}: {exc})"
        tail = last_lines(text, _LOG_TAIL_LINES) or "(broker.log is empty)"
        return f"{headline}\n--- last {_LOG_TAIL_LINES} lines of {self.log_file} ---\n{tail}"

    def _read_pid(self) -> int | None:
        text = read_text_or_none(self.pid_file)
        return int(text) if text and text.isdigit() else None

    def _alive(self, pid: int) -> bool:
        """Is ``pid`` a live (not zombie) Kafka of this data dir? Guards against pid reuse."""
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False  # some other user's process reusing the pid
        proc = Path(f"/proc/{pid}")
        if not proc.exists():
            return True  # no procfs (macOS): trust the pid file
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and str(self.properties_file).encode() in cmdline

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if self._process is not None and self._process.pid == pid:
            try:
                self._process.wait(timeout=timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        while time.monotonic() < deadline:
            if not self._alive(pid):
                return True
            time.sleep(0.05)
        return not self._alive(pid)

    def _forget(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        if self._process is not None:
            self._process.poll()  # reap, so no zombie lingers
            self._process = None


def _random_cluster_id() -> str:
    """Kafka's ``Uuid.randomUuid().toString()`` format: URL-safe base64, no padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids ids that look like command-line flags
            return text


_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")


def _initial_heap(heap: str) -> str:
    """``-Xms``: 256m, or the max heap if that is smaller (the JVM refuses Xms > Xmx)."""
    match = _SIZE.match(heap)
    if not match:
        return _MIN_HEAP  # let the JVM report the bad -Xmx value
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    return heap if int(match.group(1)) * factor < 256 << 20 else _MIN_HEAP


# --------------------------------------------------------------------------- CLI


def _configured_port(broker: Broker) -> int | None:
    """Client port recorded in server.properties by the last start (for status output)."""
    text = read_text_or_none(broker.properties_file) or ""
    match = re.search(r"^advertised\.listeners=\w+://[^:]+:(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def main(argv: Sequence[str] | None = None) -> int:
    """``start`` (background, returns when ready), ``stop`` and ``status`` of the dev broker."""
    parser = argparse.ArgumentParser(prog="python -m devstack.broker", description=main.__doc__)
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--data-dir", type=Path, default=None, help="default: <repo>/.run/kafka")
    parser.add_argument("--port", type=int, default=9092, help="client port (default 9092)")
    parser.add_argument("--controller-port", type=int, default=None, help="default: port + 1")
    parser.add_argument("--heap", default="1g", help="JVM max heap (default 1g)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait (start/stop)")
    args = parser.parse_args(argv)
    data_dir = args.data_dir if args.data_dir is not None else repo_root() / ".run" / "kafka"
    broker = Broker(data_dir, port=args.port, controller_port=args.controller_port, heap=args.heap)

    if args.command == "start":
        pid = broker.pid
        if pid is not None:
            port = _configured_port(broker) or args.port
            print(f"Kafka already running: 127.0.0.1:{port} (pid {pid}, data {broker.data_dir})")
            return 0
        started = time.monotonic()
        try:
            broker.start(timeout=args.timeout)
        except BrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"Kafka {KAFKA_VERSION} ready at {broker.bootstrap_servers} in "
            f"{time.monotonic() - started:.1f}s (pid {broker.pid}, log {broker.log_file})"
        )
        return 0

    if args.command == "stop":
        pid = broker.pid
        if pid is None:
            print(f"Kafka not running (data {broker.data_dir})")
            return 0
        try:
            broker.stop(timeout=args.timeout)
        except BrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"Kafka stopped (pid {pid})")
        return 0

    pid = broker.pid
    if pid is None:
        print(f"Kafka not running (data {broker.data_dir})")
        return 1
    port = _configured_port(broker) or args.port
    bootstrap = f"127.0.0.1:{port}"
    try:
        info = cluster_info(bootstrap, timeout=5)
    except TopicError as exc:
        print(f"Kafka process running (pid {pid}) but not answering at {bootstrap}: {exc}")
        return 1
    print(
        f"Kafka running: {bootstrap} (pid {pid}, cluster {info.get('cluster_id')}, "
        f"data {broker.data_dir})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
