"""The local stack's processes: what runs, with which settings. ``make run`` and the
end-to-end tests start exactly these; the compose test checks docker-compose.yml has them too."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rx_config.kafka_auth import KafkaAuth

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

WEB_APPS = frozenset({"portal"})
"""Services that serve people's browsers and call the APIs: no Kafka, no workers."""

ISSUER = ProcessSpec("issuer", "api")
"""The token issuer (demo clients, development only): started first, since every API fetches
its signing keys."""


def service_environment(
    service: str,
    *,
    data_dir: Path,
    bootstrap_servers: str,
    port: int,
    group_prefix: str = "",
    auth: KafkaAuth | None = None,
    issuer_url: str | None = None,
) -> dict[str, str]:
    """The settings a service's processes get (each service reads its own prefix; ``auth`` is
    the service's own Kafka principal, if the broker wants one), and the shared RX_* ones:
    development mode, and the issuer whose tokens it accepts."""
    prefix = service.upper()
    env = {
        f"{prefix}_DATABASE_URL": f"sqlite:///{data_dir / (service + '.db')}",
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

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def log_file(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def env(self, spec: ProcessSpec) -> dict[str, str]:
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
            )
        )
        if spec.service == "notify":
            env["NOTIFY_REFERRALS_FHIR_BASE"] = f"{self.url('referrals')}/fhir/R4"
            env["NOTIFY_CORS_ORIGINS"] = self.url("audit")  # the ops console
        if spec.service == "audit" and "notify" in self.ports:
            env["AUDIT_CONSOLE_NOTIFY_URL"] = self.url("notify")
        if spec.service == "portal":
            env.update(portal_environment(urls={s: self.url(s) for s in self.ports}))
        return env

    def start(self, timeout: float = 60) -> None:
        """Start the issuer, run the setup steps, start every process, wait until each API
        answers /health."""
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.start_process(ISSUER)
        self._wait_healthy(ISSUER, time.monotonic() + timeout)
        for step in SETUP_STEPS:
            with self.log_file(step.name).open("ab") as log:
                done = subprocess.run(
                    step.argv, env=self.env(step), stdout=log, stderr=log, timeout=timeout
                )
            if done.returncode != 0:
                raise StackError(f"{step.name} failed:\n{self.tail(step.name)}")
        for spec in PROCESSES:
            self.start_process(spec)
        deadline = time.monotonic() + timeout
        for spec in PROCESSES:
            if spec.is_api:
                self._wait_healthy(spec, deadline)

    def start_process(self, spec: ProcessSpec, extra_env: Mapping[str, str] | None = None) -> None:
        log = self.log_file(spec.name).open("ab")
        self.procs[spec.name] = subprocess.Popen(
            spec.argv,
            env={**self.env(spec), **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def _wait_healthy(self, spec: ProcessSpec, deadline: float) -> None:
        url = self.url(spec.service) + "/health"
        while time.monotonic() < deadline:
            proc = self.procs[spec.name]
            if proc.poll() is not None:
                raise StackError(
                    f"{spec.name} exited with {proc.returncode}:\n{self.tail(spec.name)}"
                )
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise StackError(f"{spec.name} did not answer {url} in time:\n{self.tail(spec.name)}")

    def dead(self) -> list[str]:
        """Names of processes that have exited."""
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def kill(self, name: str) -> None:
        """SIGKILL one process (fault tests)."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self, name: str, extra_env: Mapping[str, str] | None = None) -> None:
        """Start a process again (after ``kill``); ``extra_env`` adds settings to this start
        only (e.g. a fault to inject)."""
        spec = next(s for s in (ISSUER, *PROCESSES) if s.name == name)
        self.start_process(spec, extra_env)

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


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
