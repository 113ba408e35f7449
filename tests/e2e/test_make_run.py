"""`make run` (python -m devstack.run): prints where everything is, serves referrals, and
Ctrl-C leaves no process behind; on its own broker, every service logs in as itself."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from devstack.ports import free_ports, port_in_use
from rx_messaging.kafka import KafkaRecordSource
from rx_messaging.kafka_auth import KafkaAuth

from .conftest import GP, REFERRAL, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def submit_to(referrals: str) -> dict:
    headers = {**GP, "Idempotency-Key": str(uuid.uuid4())}
    response = httpx.post(f"{referrals}/referrals", json=REFERRAL, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@contextmanager
def make_run(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start ``python -m devstack.run``, yield it with its banner once it serves; on the way
    out Ctrl-C it first, so it stops its children, and only then force it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            lines.append(proc.stdout.readline())
            if "Ctrl-C stops everything" in lines[-1]:
                break
        banner = "".join(lines)
        assert "Ctrl-C stops everything" in banner, banner
        # The rest of the banner follows at once; read it up to the example.
        while "/timeline" not in lines[-1]:
            lines.append(proc.stdout.readline())
        yield proc, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def api_ports() -> dict[str, str]:
    return dict(
        zip(("REFERRALS_PORT", "ROUTING_PORT", "AUDIT_PORT"), map(str, free_ports(3)), strict=True)
    )


def wait_until_audited(audit_port: str, referral_id: str) -> None:
    audit = f"http://127.0.0.1:{audit_port}/audit/entries"
    wait_for(
        "the referral in the audit log",
        lambda: len(httpx.get(audit, params={"referral_id": referral_id}).json()) == 2,
    )


def test_make_run_prints_its_urls_serves_a_referral_and_ctrl_c_stops_everything(
    kafka_bootstrap, tmp_path
) -> None:
    ports = api_ports()
    env = {
        **os.environ,
        **ports,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RX_RUN_DIR": str(tmp_path),
    }
    with make_run(env) as (proc, banner):
        for port in ports.values():
            assert f"http://127.0.0.1:{port}" in banner
        assert kafka_bootstrap in banner

        rid = submit_to(f"http://127.0.0.1:{ports['REFERRALS_PORT']}")["id"]
        wait_until_audited(ports["AUDIT_PORT"], rid)

        started = children(proc.pid)
        assert len(started) == 8, f"expected the 8 service processes, found {len(started)}"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        wait_for(
            "every service process to exit", lambda: not any(alive(p) for p in started), timeout=10
        )
        assert proc.stdout is not None
        assert "stopped everything" in proc.stdout.read()


def kafka_user_of(pid: int) -> tuple[str, str | None]:
    """(``<service> <role>``, KAFKA_SASL_USERNAME) of a running service process."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    environ = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
        if "=" in item
    )
    return " ".join(argv[-3:-1]), environ.get("KAFKA_SASL_USERNAME")


def test_make_run_starts_a_secured_broker_with_one_principal_per_service(tmp_path) -> None:
    """Without KAFKA_BOOTSTRAP_SERVERS, make run starts its own broker with SASL and ACLs:
    the referral still flows through routing to audit, each service as its own user, and a
    provider system reads its type's topic with the credentials make run wrote."""
    ports = api_ports()
    kafka_port = next(p for p in free_ports(20) if not port_in_use(p + 1))  # + controller
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env |= {**ports, "RX_RUN_DIR": str(tmp_path), "RX_KAFKA_PORT": str(kafka_port)}
    with make_run(env) as (proc, banner):
        credentials_file = tmp_path / "kafka" / "credentials.json"
        assert f"SASL_PLAINTEXT + SCRAM-SHA-512; passwords are in {credentials_file}" in banner
        assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600
        passwords = json.loads(credentials_file.read_text())

        rid = submit_to(f"http://127.0.0.1:{ports['REFERRALS_PORT']}")["id"]
        wait_until_audited(ports["AUDIT_PORT"], rid)

        # Workers log in as their service; the internet-facing APIs get no Kafka secret.
        broker_pid = int((tmp_path / "kafka" / "broker.pid").read_text())
        users = dict(kafka_user_of(pid) for pid in children(proc.pid) - {broker_pid})
        assert users == {
            "referrals api": None,
            "referrals relay": "referrals",
            "referrals consumer": "referrals",
            "routing api": None,
            "routing relay": "routing",
            "routing consumer": "routing",
            "audit api": None,
            "audit consumer": "audit",
        }

        provider = "provider-rapid-response"
        source = KafkaRecordSource(
            f"127.0.0.1:{kafka_port}",
            f"{provider}.e2e",
            topics=["provider.rapid-response.v1"],
            auth=KafkaAuth.sasl(provider, passwords[provider]),
        )
        try:
            routed = wait_for(
                "the routed referral on the rapid response topic",
                lambda: [r for r in source.poll(0.5) if r.key == rid.encode()],
            )
        finally:
            source.close()
        assert dict(routed[0].headers)["ce_type"].endswith(b"ReferralRouted.v1")
