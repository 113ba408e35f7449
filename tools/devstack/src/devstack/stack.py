"""The local stack's processes: what runs, with which settings. ``make run`` and the
end-to-end tests start exactly these; the compose test checks docker-compose.yml has them too.

By default one process per role on SQLite files. The production shape is a choice of the
same stack: ``databases`` (one PostgreSQL database per service) and ``replicas`` (N processes
of every role; a service's API processes sit behind :mod:`devstack.balancer` on its port)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rx_config.kafka_auth import KafkaAuth

from .ports import free_ports

DEFAULT_PORTS: Mapping[str, int] = {
    "issuer": 8000,
    "referrals": 8001,
    "routing": 8002,
    "audit": 8003,
    "portal": 8004,
    "notify": 8005,
}


@dataclass(frozen=True)
class ProcessSpec:
    """One process of one service: ``python -m <service> <role>``."""

    service: str
    role: str

    @property
    def name(self) -> str:
        return f"{self.service}-{self.role}"

    @property
    def is_api(self) -> bool:
        return self.role == "api"

    @property
    def uses_kafka(self) -> bool:
        """Workers talk to Kafka, so they get their service's credentials; the APIs face the
        internet and have no use for them — except audit's, whose chain verification reads
        the published checkpoints back from Kafka."""
        return self.role in ("relay", "consumer", "worker") or self.service == "audit"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.service, self.role]


PROCESSES: tuple[ProcessSpec, ...] = (
    ProcessSpec("referrals", "api"),
    ProcessSpec("referrals", "relay"),
    ProcessSpec("referrals", "consumer"),
    ProcessSpec("routing", "api"),
    ProcessSpec("routing", "relay"),
    ProcessSpec("routing", "consumer"),
    ProcessSpec("routing", "clock"),
    ProcessSpec("audit", "api"),
    ProcessSpec("audit", "consumer"),
    ProcessSpec("audit", "relay"),
    ProcessSpec("notify", "api"),
    ProcessSpec("notify", "worker"),
    ProcessSpec("notify", "relay"),
    ProcessSpec("portal", "api"),
)
"""Every long-running process of the platform."""

SETUP_STEPS: tuple[ProcessSpec, ...] = (ProcessSpec("routing", "seed"),)
"""One-off steps run to completion before the processes start (demo directory and rules)."""

DEFAULT_METRICS_PORTS: Mapping[str, int] = {
    "referrals-relay": 9101,
    "referrals-consumer": 9102,
    "routing-relay": 9111,
    "routing-consumer": 9112,
    "routing-clock": 9113,
    "audit-consumer": 9121,
    "audit-relay": 9122,
    "notify-worker": 9131,
    "notify-relay": 9132,
}
"""Where each worker process serves /metrics, /health and /ready (APIs serve them on their own
port). RX_METRICS_PORT tells a worker its port."""

DATABASE_SERVICES: tuple[str, ...] = ("referrals", "routing", "audit", "notify", "portal")
"""Services with a database of their own (the issuer keeps only its signing keys)."""

BALANCER = ProcessSpec("devstack", "balancer")
"""Spreads each service's port over its API processes when there are several."""

WEB_APPS = frozenset({"portal"})
"""Services that serve people's browsers and call the APIs: no Kafka, no workers."""

ISSUER = ProcessSpec("issuer", "api")
"""The token issuer (demo clients, development only): a stack counts as started once it answers
too, since every API fetches its signing keys on its first call."""


def service_environment(
    service: str,
    *,
    data_dir: Path,
    bootstrap_servers: str,
    port: int,
    group_prefix: str = "",
    auth: KafkaAuth | None = None,
    issuer_url: str | None = None,
    database_url: str | None = None,
) -> dict[str, str]:
    """The settings a service's processes get (each service reads its own prefix; ``auth`` is
    the service's own Kafka principal, if the broker wants one), and the shared RX_* ones:
    development mode, and the issuer whose tokens it accepts. ``database_url``: the service's
    database, a SQLite file in ``data_dir`` by default."""
    prefix = service.upper()
    env = {
        f"{prefix}_DATABASE_URL": database_url or f"sqlite:///{data_dir / (service + '.db')}",
        f"{prefix}_PORT": str(port),
        f"{prefix}_HOST": "127.0.0.1",
        "RX_ENV": "development",
    }
    if service in WEB_APPS:
        return env
    env |= {
        **(auth.environment() if auth is not None else {}),
        f"{prefix}_CONSUMER_GROUP": group_prefix + service,
        f"{prefix}_HEARTBEAT_DIR": str(data_dir / "heartbeats"),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
    }
    if service == "audit":
        # The checkpoint signing keys, made by the relay on its first start (development).
        env["AUDIT_CHECKPOINT_KEYS_FILE"] = str(data_dir / "audit" / "checkpoint-keys.json")
    if issuer_url is not None:
        env["RX_TOKEN_ISSUER"] = issuer_url
    if service == "notify":
        # Development: endpoints may be receivers on this machine (plain http to loopback).
        env["NOTIFY_ALLOW_LOOPBACK"] = "true"
        env["NOTIFY_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    return env


def issuer_environment(
    *, data_dir: Path, port: int, console_origin: str | None = None
) -> dict[str, str]:
    """The issuer's settings: its address doubles as the tokens' issuer identifier; the ops
    console's origin may ask for tokens from a browser."""
    return {
        "ISSUER_CORS_ORIGINS": console_origin or "",
        "ISSUER_PORT": str(port),
        "ISSUER_HOST": "127.0.0.1",
        "ISSUER_URL": f"http://127.0.0.1:{port}",
        "ISSUER_KEYS_FILE": str(data_dir / "issuer" / "keys.json"),
        "RX_ENV": "development",
    }


def portal_environment(*, urls: Mapping[str, str]) -> dict[str, str]:
    """Where the portal is reached, and the API and the OpenID provider it uses for the people
    signed in."""
    return {
        "PORTAL_URL": urls["portal"],
        "PORTAL_REFERRALS_URL": urls["referrals"],
        "PORTAL_ISSUER_URL": urls["issuer"],
    }


def postgres_databases(server_url: str, prefix: str = "") -> dict[str, str]:
    """Service -> the URL of its own PostgreSQL database ``<prefix><service>`` on the server of
    ``server_url``, created if missing."""
    from .postgres import ensure_databases

    urls = ensure_databases(server_url, [prefix + service for service in DATABASE_SERVICES])
    return {service: urls[prefix + service] for service in DATABASE_SERVICES}


class StackError(RuntimeError):
    """A process of the stack failed to start or died; the message has its log tail."""


@dataclass
class Stack:
    """Starts, watches and stops the platform's processes against a given broker."""

    data_dir: Path
    bootstrap_servers: str
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    group_prefix: str = ""
    kafka_auth: Mapping[str, KafkaAuth] = field(default_factory=dict)
    """Service name -> its Kafka principal; services not named inherit this environment's."""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    metrics_ports: Mapping[str, int] | None = None
    """Worker process name -> its metrics port; by default the standard ports for a stack on
    the standard API ports, free ones otherwise (tests run stacks side by side)."""
    databases: Mapping[str, str] = field(default_factory=dict)
    """Service -> its database URL (e.g. PostgreSQL); services not named get a SQLite file in
    ``data_dir``."""
    replicas: int = 1
    """Processes per role. With more than one, process names end in ``.1``, ``.2`` … and a
    service's API processes listen on ports of their own behind the balancer on its port."""
    api_ports: dict[str, int] = field(default_factory=dict)
    """API process name -> the port it listens on itself (only with several replicas)."""
    session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    """The portal's cookie key, one for all its processes (each would make its own)."""

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas must be at least 1, not {self.replicas}")
        workers = [name for name, spec in self.processes().items() if not spec.is_api]
        apis = [name for name, spec in self.processes().items() if spec.is_api]
        wanted: list[str] = []
        if self.metrics_ports is None:
            if dict(self.ports) == dict(DEFAULT_PORTS) and self.replicas == 1:
                self.metrics_ports = dict(DEFAULT_METRICS_PORTS)
            else:
                wanted += workers
        if self.replicas > 1 and not self.api_ports:
            wanted += apis
        # One choice for all of them, none of the services' ports: ports chosen apart could
        # be the same one, and the second process to bind it would exit.
        taken = set(self.ports.values())
        chosen = (
            [p for p in free_ports(len(wanted) + len(taken)) if p not in taken] if wanted else []
        )
        ports = dict(zip(wanted, chosen, strict=False))
        if self.metrics_ports is None:
            self.metrics_ports = {name: ports[name] for name in workers}
        if self.replicas > 1 and not self.api_ports:
            self.api_ports = {name: ports[name] for name in apis}

    def instance_names(self, spec: ProcessSpec) -> list[str]:
        """The names of ``spec``'s processes: its own name with one replica."""
        if self.replicas == 1 or spec in (ISSUER, BALANCER):
            return [spec.name]
        return [f"{spec.name}.{i}" for i in range(1, self.replicas + 1)]

    def processes(self) -> dict[str, ProcessSpec]:
        """Process name -> what it runs, for every long-running service process."""
        return {name: spec for spec in PROCESSES for name in self.instance_names(spec)}

    def spec_of(self, name: str) -> ProcessSpec:
        if name == ISSUER.name:
            return ISSUER
        if name == BALANCER.name:
            return BALANCER
        return self.processes()[name]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def ops_url(self, name: str) -> str:
        """Where process ``name`` serves /metrics, /health and /ready."""
        spec = self.spec_of(name)
        if spec.is_api:
            port = self.api_ports.get(name)
            return f"http://127.0.0.1:{port}" if port else self.url(spec.service)
        assert self.metrics_ports is not None
        return f"http://127.0.0.1:{self.metrics_ports[name]}"

    def log_file(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def env(self, spec: ProcessSpec, name: str | None = None) -> dict[str, str]:
        """The environment of ``spec``'s process ``name`` (its only one by default)."""
        name = name or self.instance_names(spec)[0]
        env = dict(os.environ)
        if spec == ISSUER:
            env.update(
                issuer_environment(
                    data_dir=self.data_dir,
                    port=self.ports["issuer"],
                    console_origin=self.url("audit"),
                )
            )
            return env
        env.update(
            service_environment(
                spec.service,
                data_dir=self.data_dir,
                bootstrap_servers=self.bootstrap_servers,
                port=self.ports[spec.service],
                group_prefix=self.group_prefix,
                auth=self.kafka_auth.get(spec.service) if spec.uses_kafka else None,
                issuer_url=self.url("issuer"),
                database_url=self.databases.get(spec.service),
            )
        )
        if name in self.api_ports:
            env[f"{spec.service.upper()}_PORT"] = str(self.api_ports[name])
        if spec.is_api and self.replicas > 1:
            # Each API process counts its own callers: a share of the limit each keeps a
            # client within the limit across all of them (docs/security.md).
            env.setdefault("RX_RATE_LIMIT_PROCESSES", str(self.replicas))
        if not spec.is_api and self.metrics_ports and name in self.metrics_ports:
            env["RX_METRICS_PORT"] = str(self.metrics_ports[name])
        if spec.service == "audit":
            targets = [f"{self.ops_url(n)}/metrics" for n in self.processes()]
            env["AUDIT_METRICS_TARGETS"] = ",".join(targets)
        if spec.service == "notify":
            env["NOTIFY_REFERRALS_FHIR_BASE"] = f"{self.url('referrals')}/fhir/R4"
            env["NOTIFY_CORS_ORIGINS"] = self.url("audit")  # the ops console
        if spec.service == "audit" and "notify" in self.ports:
            env["AUDIT_CONSOLE_NOTIFY_URL"] = self.url("notify")
        if spec.service == "portal":
            env.update(portal_environment(urls={s: self.url(s) for s in self.ports}))
            if self.replicas > 1:
                env.setdefault("PORTAL_SESSION_SECRET", self.session_secret)
        return env

    def start(self, timeout: float = 60) -> None:
        """Start the issuer and every process (a service with setup steps once they are done),
        wait until each API answers /health. If anything fails, whatever was started is
        stopped again. ``timeout``: for the setup steps, then again for the APIs to answer."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        # Starting a process is mostly its imports, so everything that does not wait on the
        # setup steps starts at once: the issuer, the steps, every other service's processes.
        # A service with a setup step starts once its steps are done (they fill its database).
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        self.start_process(ISSUER)
        steps = {
            step.name: self._popen(step.name, step.argv, self.env(step)) for step in SETUP_STEPS
        }
        waiting = {step.service for step in SETUP_STEPS}
        for name, spec in self.processes().items():
            if spec.service not in waiting:
                self.start_process(spec, name=name)
        try:
            for name, step in steps.items():
                try:
                    returncode = step.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise StackError(f"{name} did not finish in time:\n{self.tail(name)}") from None
                if returncode != 0:
                    raise StackError(f"{name} failed:\n{self.tail(name)}")
        finally:
            for step in steps.values():
                if step.poll() is None:
                    _signal_group(step, signal.SIGKILL)
                    step.wait()
        for name, spec in self.processes().items():
            if spec.service in waiting:
                self.start_process(spec, name=name)
        if self.api_ports:
            self.start_process(BALANCER)
        deadline = time.monotonic() + timeout
        self._wait_healthy(ISSUER.name, self.url("issuer"), deadline)
        for name, spec in self.processes().items():
            if spec.is_api:
                self._wait_healthy(name, self.ops_url(name), deadline)
        if self.api_ports:
            for service in {spec.service for spec in PROCESSES if spec.is_api}:
                self._wait_healthy(BALANCER.name, self.url(service), deadline)

    def _balancer_argv(self) -> list[str]:
        routes: dict[int, list[str]] = {}
        for name, port in self.api_ports.items():
            routes.setdefault(self.ports[self.spec_of(name).service], []).append(str(port))
        return [
            sys.executable,
            "-m",
            "devstack.balancer",
            *(f"{port}={','.join(backends)}" for port, backends in routes.items()),
        ]

    def start_process(
        self,
        spec: ProcessSpec,
        extra_env: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        name = name or self.instance_names(spec)[0]
        if spec == BALANCER:
            self.procs[name] = self._popen(name, self._balancer_argv(), None)
            return
        env = {**self.env(spec, name), **(extra_env or {})}
        self.procs[name] = self._popen(name, spec.argv, env)

    def _popen(
        self, name: str, argv: list[str], env: Mapping[str, str] | None
    ) -> subprocess.Popen[bytes]:
        with self.log_file(name).open("ab") as log:
            return subprocess.Popen(
                argv,
                env=dict(env) if env is not None else None,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_healthy(self, name: str, base_url: str, deadline: float) -> None:
        url = base_url + "/health"
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise StackError(f"{name} did not answer {url} in time:\n{self.tail(name)}")

    def dead(self) -> list[str]:
        """Names of processes that have exited; with replicas, also the role's name once
        every process of it has (as :meth:`named` reads it)."""
        gone = [name for name, proc in self.procs.items() if proc.poll() is not None]
        if self.replicas > 1:
            roles = {self.spec_of(name).name for name in gone if name in self.processes()}
            gone += sorted(r for r in roles if set(self.named(r)) <= set(gone))
        return gone

    def named(self, name: str) -> list[str]:
        """The processes ``name`` means: that process, or every process of a role
        (``referrals-relay`` is ``referrals-relay.1`` and ``.2`` with two replicas)."""
        if name in self.names():
            return [name]
        every = [n for n, spec in self.processes().items() if spec.name == name]
        if not every:
            raise KeyError(f"no process {name!r} in this stack")
        return every

    def kill(self, name: str) -> None:
        """SIGKILL a process, or every process of a role (fault tests)."""
        for one in self.named(name):
            proc = self.procs[one]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def freeze(self, name: str) -> None:
        """SIGSTOP a process, or every process of a role: it stays alive, holding its
        connections and whatever it was doing, but does nothing (a stalled VM, a long pause)
        until :meth:`thaw`."""
        for one in self.named(name):
            _signal_group(self.procs[one], signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        """SIGCONT what :meth:`freeze` stopped: it goes on where it was."""
        for one in self.named(name):
            _signal_group(self.procs[one], signal.SIGCONT)

    def restart(self, name: str, extra_env: Mapping[str, str] | None = None) -> None:
        """Start a process (or every process of a role) again after ``kill``; ``extra_env``
        adds settings to this start only (e.g. a fault to inject)."""
        for one in self.named(name):
            self.start_process(self.spec_of(one), extra_env, name=one)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM every process group, then SIGKILL what is left; leaves nothing running."""
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            text = self.log_file(name).read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def names(self) -> list[str]:
        """Every process this stack runs, the issuer and (with replicas) the balancer too."""
        return [ISSUER.name, *self.processes(), *([BALANCER.name] if self.api_ports else [])]


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
