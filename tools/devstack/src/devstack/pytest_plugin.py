"""pytest fixtures that give tests a real Kafka broker (load with ``pytest_plugins``).

- ``kafka_bootstrap`` (session): bootstrap servers of a broker started once per test session on
  free ports, or of the broker named by ``KAFKA_BOOTSTRAP_SERVERS`` (e.g. one started with
  ``make broker-start``, which saves the start-up time on repeated runs).
- ``broker_factory`` (function): starts dedicated brokers for tests that stop, kill or restart
  one, so the shared broker is never disturbed.
- ``module_broker`` (module): one dedicated broker for the tests of a module.
- ``unique_topic`` (function): a fresh 3-partition topic on ``kafka_bootstrap``.
- ``secured_kafka`` (session, started on first use): a second broker with SASL/SCRAM and the
  StandardAuthorizer, the platform's topics, and the users and ACLs of ``devstack.access``;
  ``secured_kafka.auth("provider-acute")`` logs in as that principal. Its topics are the
  platform's real names (the ACLs name them), so tests tell their records apart by key.
- ``postgres_server`` (session): server-level URL (``postgresql+psycopg://…/postgres``) of a
  PostgreSQL server started once per test session on a free port (installed from Debian's
  packages on first use), or of the server named by ``RX_POSTGRES_URL``.
- ``database_url`` (function, parametrized ``sqlite`` / ``postgresql``): a fresh, empty
  database for each test, so database code is proven on both engines the services support.
  The server starts only when a test actually gets the ``postgresql`` variant.
- ``stack_shape`` (session): the databases and processes per role the end-to-end and fault
  tests run their stacks with — SQLite and one process by default; ``--stack-db postgres
  --stack-replicas 2`` runs them all in the production shape (docs/development.md).
  :func:`stack_databases` gives a stack its databases in that shape.
- ``chromium_executable`` (session): path of Debian's Chromium for browser tests (installed on
  first use); launch it with ``devstack.chromium.CHROMIUM_ARGS``.
- ``fhir_validator`` (session, started on first use): one HAPI FHIR instance validator process
  (base R4, ``devstack.fhir_validator``); ``fhir_validator.errors(resource)`` lists what is wrong.

A broker, database server or browser that cannot start is a test *error* carrying its log tail, never a
skip: a suite that silently skips its Kafka or PostgreSQL tests looks green while testing
nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
from rx_config.kafka_auth import KafkaAuth

from devstack.access import plan, secure_topics
from devstack.broker import (
    KAFKA_VERSION,
    Broker,
    BrokerError,
    PortInUseError,
    ensure_jars,
    free_ports,
)
from devstack.chromium import ChromiumError, ensure_chromium_installed
from devstack.credentials import new_password
from devstack.fhir_validator import FhirValidator, FhirValidatorError
from devstack.postgres import (
    PostgresError,
    PostgresPortInUseError,
    PostgresServer,
    create_database,
    drop_database,
    ensure_postgres_installed,
    server_version,
)
from devstack.sasl import ADMIN, CONTROLLER, BrokerSecurity
from devstack.stack import postgres_databases
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


def _start_broker(
    config: pytest.Config,
    data_dir: Path,
    label: str,
    heap: str,
    security: BrokerSecurity | None = None,
) -> Broker:
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

    def build() -> tuple[Broker, str]:
        port, controller_port = free_ports(2)
        broker = Broker(
            data_dir, port=port, controller_port=controller_port, heap=heap, security=security
        )
        return broker, f"{label} Kafka {KAFKA_VERSION} broker at {broker.bootstrap_servers}"

    return _start_on_free_ports(
        config, f"{label} Kafka broker", build, port_taken=PortInUseError, failed=BrokerError
    )


class _Server(Protocol):
    """What :func:`_start_on_free_ports` starts: a broker or a PostgreSQL server."""

    @property
    def log_file(self) -> Path: ...

    def start(self) -> None: ...


_S = TypeVar("_S", bound=_Server)


def _start_on_free_ports(
    config: pytest.Config,
    name: str,
    build: Callable[[], tuple[_S, str]],
    *,
    port_taken: type[Exception],
    failed: type[Exception],
) -> _S:
    """Start the server ``build`` makes on ports it has just found free (and a description
    for the progress line), building another while ``port_taken`` says a free port was
    taken between choosing and binding it. Failures become ``pytest.fail`` outside the
    ``except`` blocks, so the report shows the log tail once instead of a chained traceback."""
    error = ""
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        server, description = build()
        _say(config, f"starting {description} …")
        started = time.monotonic()
        try:
            server.start()
        except port_taken as exc:
            error = f"the {name} did not start: {exc}"
            if attempt < _PORT_ATTEMPTS:
                continue  # a free port was taken between choosing and binding it
        except failed as exc:
            error = f"the {name} did not start: {exc}"
        else:
            _say(
                config,
                f"{name} ready in {time.monotonic() - started:.1f}s (log: {server.log_file})",
            )
            return server
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


@pytest.fixture(scope="module")
def module_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """A dedicated broker shared by the tests of one module (e.g. fault tests whose last one
    kills it); stopped after the module."""
    broker = _start_broker(
        request.config, tmp_path_factory.mktemp("kafka-module"), "dedicated", heap="512m"
    )
    try:
        yield broker
    finally:
        broker.stop()


@dataclass(frozen=True)
class SecuredKafka:
    """A running broker that authenticates every client and authorises by the platform's ACLs."""

    bootstrap_servers: str
    admin: KafkaAuth
    passwords: Mapping[str, str]
    log_file: Path

    def auth(self, principal: str) -> KafkaAuth:
        """Credentials of a planned principal (``routing``, ``provider-acute``, …)."""
        return KafkaAuth.sasl(principal, self.passwords[principal])


@pytest.fixture(scope="session")
def secured_kafka(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredKafka]:
    """The session's secured broker (see the module docstring); always started here, since a
    broker named by KAFKA_BOOTSTRAP_SERVERS is not known to have these users and ACLs."""
    passwords = {name: new_password() for name in (ADMIN, CONTROLLER, *(p.name for p in plan()))}
    security = BrokerSecurity(passwords[ADMIN], passwords[CONTROLLER])
    broker = _start_broker(
        request.config, tmp_path_factory.mktemp("kafka-sasl"), "secured", "512m", security
    )
    try:
        error = ""
        try:
            secure_topics(broker.bootstrap_servers, security.admin_auth, passwords)
        except TopicError as exc:
            error = f"setting up the secured broker's topics, users and ACLs failed: {exc}"
        if error:
            pytest.fail(error, pytrace=False)
        yield SecuredKafka(
            broker.bootstrap_servers, security.admin_auth, passwords, broker.log_file
        )
    finally:
        broker.stop()


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest, kafka_bootstrap: str) -> str:
    """Name of a new, empty 3-partition topic, so tests never see each other's records."""
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-.")[:60] or "test"
    name = f"{base}-{uuid.uuid4().hex[:12]}"
    ensure_topics(kafka_bootstrap, {name: 3})
    return name


# --------------------------------------------------------------------------- PostgreSQL

_POSTGRES_DIR_PREFIX = "rx-pytest-postgres-"


def _postgres_base_dir() -> Path:
    """Where session servers keep their data: /tmp, not pytest's temp dirs, because as root
    the server runs as the ``postgres`` user and /tmp/pytest-of-root is private to root."""
    return Path(tempfile.gettempdir())


def _start_postgres(config: pytest.Config) -> PostgresServer:
    """Install (first run only) and start a session PostgreSQL on a free port, retrying if
    another process grabs the port first. Failures become ``pytest.fail`` with the log tail."""
    error = ""
    try:
        bin_dir = ensure_postgres_installed(progress=lambda message: _say(config, message))
    except PostgresError as exc:
        error = f"cannot install PostgreSQL: {exc}"
    if error:
        pytest.fail(error, pytrace=False)
    data_dir = Path(tempfile.mkdtemp(prefix=_POSTGRES_DIR_PREFIX, dir=_postgres_base_dir()))
    (data_dir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
    version = bin_dir.parent.name

    def build() -> tuple[PostgresServer, str]:
        [port] = free_ports(1)
        server = PostgresServer(data_dir, port=port, bin_dir=bin_dir)
        return server, f"session PostgreSQL {version} at 127.0.0.1:{port}"

    return _start_on_free_ports(
        config, "session PostgreSQL", build, port_taken=PostgresPortInUseError, failed=PostgresError
    )


def _reap_orphan_postgres() -> None:
    """Stop session servers left behind by killed test sessions, and delete their data.

    ``pg_ctl`` detaches the server, so a hard-killed pytest leaves it running. Only dirs this
    plugin made whose owning pytest process is gone are touched (as for Kafka above).
    """
    for owner_file in _postgres_base_dir().glob(f"{_POSTGRES_DIR_PREFIX}*/{_OWNER_FILE}"):
        owner = (owner_file.read_text() if owner_file.is_file() else "").strip()
        if not owner.isdigit() or _process_exists(int(owner)):
            continue
        try:
            PostgresServer(owner_file.parent).stop(timeout=10)
        except PostgresError:
            continue  # leave it for a human: the data dir holds its log
        shutil.rmtree(owner_file.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """Server-level SQLAlchemy URL of the session's PostgreSQL (``…@127.0.0.1:<port>/postgres``).

    ``RX_POSTGRES_URL`` (e.g. ``postgresql+psycopg://user:pw@host:5432/postgres``, a role that
    may create databases) uses a server you already have instead of starting one.
    """
    external = os.environ.get("RX_POSTGRES_URL")
    if external:
        shown = re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", external)
        _say(request.config, f"using the PostgreSQL server at {shown} (RX_POSTGRES_URL)")
        error = ""
        try:
            version = server_version(external)
        except PostgresError as exc:
            error = str(exc)
        if error:
            pytest.fail(
                f"RX_POSTGRES_URL={shown} does not answer: {error}\n"
                "start that server or unset the variable to let the tests start one",
                pytrace=False,
            )
        _say(request.config, f"PostgreSQL {version} answers at {shown}")
        yield external
        return
    _reap_orphan_postgres()
    server = _start_postgres(request.config)
    try:
        yield server.url("postgres")
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database: a SQLite file, or a new PostgreSQL database
    (dropped afterwards) on ``postgres_server``, which is started only if a test gets here."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    server_url: str = request.getfixturevalue("postgres_server")
    base = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t_{base}_{uuid.uuid4().hex[:12]}"
    error = ""
    try:
        url = create_database(server_url, name)
    except PostgresError as exc:
        error = str(exc)
    if error:
        pytest.fail(error, pytrace=False)
    try:
        yield url
    finally:
        with contextlib.suppress(PostgresError):
            drop_database(server_url, name)


# --------------------------------------------------------------------------- stack shape


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stack shape", "how the end-to-end and fault tests run the platform")
    group.addoption(
        "--stack-db",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the services' databases in end-to-end and fault tests (default sqlite)",
    )
    group.addoption(
        "--stack-replicas",
        type=int,
        default=1,
        help="processes per role in end-to-end and fault tests (default 1)",
    )


@dataclass(frozen=True)
class StackShape:
    """What a test stack runs on: ``sqlite`` or ``postgres``, and processes per role."""

    db: str = "sqlite"
    replicas: int = 1

    @property
    def label(self) -> str:
        return f"{self.db} x{self.replicas}"


@pytest.fixture(scope="session")
def stack_shape(request: pytest.FixtureRequest) -> StackShape:
    """The shape chosen on the command line (``--stack-db``, ``--stack-replicas``)."""
    replicas = int(request.config.getoption("--stack-replicas"))
    if replicas < 1:
        pytest.fail("--stack-replicas must be at least 1", pytrace=False)
    return StackShape(str(request.config.getoption("--stack-db")), replicas)


def stack_databases(request: pytest.FixtureRequest, db: str, prefix: str) -> dict[str, str]:
    """The databases of a test stack: none named for ``sqlite`` (the stack keeps files), or a
    fresh PostgreSQL database per service on ``postgres_server``, dropped when the requesting
    fixture or test is torn down. ``prefix``: lower-case letters, digits and ``_``."""
    if db == "sqlite":
        return {}
    server_url: str = request.getfixturevalue("postgres_server")
    error = ""
    try:
        urls = postgres_databases(server_url, prefix)
    except PostgresError as exc:
        error = str(exc)
    if error:
        pytest.fail(error, pytrace=False)

    def drop() -> None:
        for service in urls:
            with contextlib.suppress(PostgresError):
                drop_database(server_url, prefix + service)

    request.addfinalizer(drop)
    return urls


# --------------------------------------------------------------------------- Chromium


@pytest.fixture(scope="session")
def chromium_executable(request: pytest.FixtureRequest) -> Path:
    """Debian's Chromium, installed on first use; a missing browser fails, never skips."""
    error = ""
    try:
        return ensure_chromium_installed(progress=lambda message: _say(request.config, message))
    except ChromiumError as exc:
        error = f"cannot install Chromium for the browser tests: {exc}"
    pytest.fail(error, pytrace=False)


# --------------------------------------------------------------------------- FHIR validator


@pytest.fixture(scope="session")
def fhir_validator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FhirValidator]:
    """The session's HAPI FHIR validator (jars fetched and server compiled on first use);
    missing Java or Maven fails, never skips."""
    validator = FhirValidator(tmp_path_factory.mktemp("fhir-validator") / "validator.log")
    _say(request.config, "starting the HAPI FHIR validator (base R4) …")
    error = ""
    try:
        # Generous: it loads all of R4 (half a minute on a quiet machine, minutes on a busy one).
        validator.start(timeout=600, progress=lambda message: _say(request.config, message))
    except FhirValidatorError as exc:
        error = f"the FHIR validator did not start: {exc}"
    if error:
        pytest.fail(error, pytrace=False)
    _say(request.config, f"FHIR validator ready in {validator.started_in:.1f}s")
    try:
        yield validator
    finally:
        validator.stop()
