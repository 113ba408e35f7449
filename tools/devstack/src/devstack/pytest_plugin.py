"""pytest fixtures that give tests a real Kafka broker (load with ``pytest_plugins``).

- ``kafka_bootstrap`` (session): bootstrap servers of a broker started once per test session on
  free ports, or of the broker named by ``KAFKA_BOOTSTRAP_SERVERS`` (e.g. one started with
  ``make broker-start``, which saves the start-up time on repeated runs).
- ``broker_factory`` (function): starts dedicated brokers for tests that stop, kill or restart
  one, so the shared broker is never disturbed.
- ``unique_topic`` (function): a fresh 3-partition topic on ``kafka_bootstrap``.

A broker that cannot start is a test *error* carrying the broker log tail, never a skip: a
suite that silently skips its Kafka tests looks green while testing nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.broker import (
    KAFKA_VERSION,
    Broker,
    BrokerError,
    PortInUseError,
    ensure_jars,
    free_ports,
)
from devstack.topics import TopicError, cluster_info, ensure_topics

BrokerFactory = Callable[..., Broker]

_OWNER_FILE = "owner.pid"
_PORT_ATTEMPTS = 3


def _say(config: pytest.Config, message: str) -> None:
    """Show a progress line right away, even while pytest captures output."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    line = f"devstack: {message}"
    if reporter is None:
        print(line, flush=True)
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        # Start on a fresh line, also after -q progress dots (ensure_newline misses those).
        writer = getattr(reporter, "_tw", None)
        if getattr(writer, "width_of_current_line", 0):
            reporter.write("\n")
        reporter.write_line(line)


def _start_broker(config: pytest.Config, data_dir: Path, label: str, heap: str) -> Broker:
    """Start a broker on free ports (retrying if another process grabs them first).

    Failures become ``pytest.fail`` outside the ``except`` blocks, so the report shows the
    broker log tail once instead of a chained traceback.
    """
    error = ""
    try:
        ensure_jars(progress=lambda message: _say(config, message))
    except BrokerError as exc:
        error = f"cannot prepare the Kafka jars: {exc}"
    if error:
        pytest.fail(error, pytrace=False)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port, controller_port = free_ports(2)
        broker = Broker(data_dir, port=port, controller_port=controller_port, heap=heap)
        _say(
            config,
            f"starting {label} Kafka {KAFKA_VERSION} broker at {broker.bootstrap_servers} …",
        )
        started = time.monotonic()
        try:
            broker.start()
        except PortInUseError as exc:
            error = f"the {label} Kafka broker did not start: {exc}"
            if attempt < _PORT_ATTEMPTS:
                continue  # a free port was taken between choosing and binding it
        except BrokerError as exc:
            error = f"the {label} Kafka broker did not start: {exc}"
        else:
            _say(
                config,
                f"{label} Kafka broker ready in {time.monotonic() - started:.1f}s "
                f"(log: {broker.log_file})",
            )
            return broker
        break
    pytest.fail(error, pytrace=False)


def _reap_orphans(base_temp: Path) -> None:
    """Stop brokers left behind by earlier test sessions that were killed (e.g. SIGKILL, OOM).

    Brokers run in their own session so Ctrl-C cannot kill them mid-test; the price is that a
    hard-killed pytest leaves them running. Only brokers this plugin started (they carry an
    owner file) whose owning pytest process is gone are stopped, so parallel sessions (other
    terminals, xdist workers) and brokers that tests start themselves are left alone.
    """
    root = base_temp.parent  # e.g. /tmp/pytest-of-<user>, holding pytest-<n> of past sessions
    for pattern in (f"pytest-*/*/{_OWNER_FILE}", f"pytest-*/*/*/{_OWNER_FILE}"):
        for owner_file in root.glob(pattern):
            owner = owner_file.read_text().strip()
            if owner.isdigit() and _process_exists(int(owner)):
                continue
            broker = Broker(owner_file.parent)
            if broker.is_running():
                broker.stop(timeout=10)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Bootstrap servers of the session's Kafka broker ("127.0.0.1:<port>")."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        _say(request.config, f"using the Kafka broker at {external} (KAFKA_BOOTSTRAP_SERVERS)")
        error = ""
        try:
            cluster_info(external, timeout=15)
        except TopicError as exc:
            error = str(exc)
        if error:
            pytest.fail(
                f"KAFKA_BOOTSTRAP_SERVERS={external} does not answer: {error}\n"
                "start it (make broker-start) or unset the variable to let the tests start one",
                pytrace=False,
            )
        yield external
        return
    _reap_orphans(tmp_path_factory.getbasetemp())
    broker = _start_broker(request.config, tmp_path_factory.mktemp("kafka"), "session", heap="1g")
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def broker_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerFactory]:
    """Callable starting a dedicated broker on free ports; all are stopped at teardown.

    ``broker_factory(heap="512m")`` returns the started ``Broker``; use it for tests that
    ``stop()``, ``kill()`` or restart a broker.
    """
    brokers: list[Broker] = []

    def start(heap: str = "512m") -> Broker:
        data_dir = tmp_path_factory.mktemp("kafka-dedicated")
        broker = _start_broker(request.config, data_dir, "dedicated", heap=heap)
        brokers.append(broker)
        return broker

    yield start
    errors = []
    for broker in brokers:
        try:
            broker.stop()
        except BrokerError as exc:
            errors.append(str(exc))
    if errors:
        pytest.fail("stopping dedicated brokers failed: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest, kafka_bootstrap: str) -> str:
    """Name of a new, empty 3-partition topic, so tests never see each other's records."""
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-.")[:60] or "test"
    name = f"{base}-{uuid.uuid4().hex[:12]}"
    ensure_topics(kafka_bootstrap, {name: 3})
    return name
