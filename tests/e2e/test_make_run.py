"""`make run` (python -m devstack.run): starts its own secured broker, prints where everything
is, serves referrals with every service logged in as itself, and Ctrl-C leaves no process
behind."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from devstack.ports import free_ports, port_in_use
from rx_config.kafka_auth import KafkaAuth
from rx_messaging.kafka import KafkaRecordSource

from .conftest import REFERRAL, token, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def submit_to(referrals: str, issuer: str) -> dict:
    headers = {
        "Authorization": f"Bearer {token(issuer, 'b81001', 'referrals')}",
        "Idempotency-Key": str(uuid.uuid4()),
    }
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


def kafka_user_of(pid: int) -> tuple[str, str | None]:
    """(``<service> <role>``, KAFKA_SASL_USERNAME) of a running service process."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    environ = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
        if "=" in item
    )
    return " ".join(argv[-3:-1]), environ.get("KAFKA_SASL_USERNAME")


def read_banner(proc: subprocess.Popen[str]) -> str:
    """What make run prints up to its example, once everything serves."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        lines.append(proc.stdout.readline())
        if "Ctrl-C stops everything" in lines[-1]:
            break
    assert "Ctrl-C stops everything" in "".join(lines), "".join(lines)
    # The rest of the banner follows at once; read it up to the example.
    while "/timeline" not in lines[-1]:
        lines.append(proc.stdout.readline())
    return "".join(lines)


def test_make_run_secures_its_broker_serves_a_referral_and_ctrl_c_stops_everything(
    tmp_path: Path,
) -> None:
    """Plain `make run`: its own broker with SASL and ACLs, each worker logged in as its
    service, a token from its issuer, a referral flowing through routing to audit, a provider
    system reading its type's topic with the credentials make run wrote, and nothing left
    running after Ctrl-C."""
    names = (
        "ISSUER_PORT",
        "REFERRALS_PORT",
        "ROUTING_PORT",
        "AUDIT_PORT",
        "NOTIFY_PORT",
        "PORTAL_PORT",
    )
    ports = dict(zip(names, map(str, free_ports(len(names))), strict=True))
    kafka_port = next(p for p in free_ports(20) if not port_in_use(p + 1))  # + controller
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env |= {**ports, "RX_RUN_DIR": str(tmp_path), "RX_KAFKA_PORT": str(kafka_port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = read_banner(proc)
        for port in (*ports.values(), str(kafka_port)):
            assert f"127.0.0.1:{port}" in banner
        credentials_file = tmp_path / "kafka" / "credentials.json"
        assert f"SASL_PLAINTEXT + SCRAM-SHA-512; passwords are in {credentials_file}" in banner
        assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600
        passwords = json.loads(credentials_file.read_text())

        referrals = f"http://127.0.0.1:{ports['REFERRALS_PORT']}"
        issuer = f"http://127.0.0.1:{ports['ISSUER_PORT']}"
        assert f"{issuer}/oauth2/token" in banner
        rid = submit_to(referrals, issuer)["id"]
        audit = f"http://127.0.0.1:{ports['AUDIT_PORT']}/audit/entries"
        ops = {"Authorization": f"Bearer {token(issuer, 'ops', 'audit')}"}
        wait_for(
            "the referral in the audit log",
            lambda: (
                len(httpx.get(audit, params={"referral_id": rid}, headers=ops).json()["items"]) == 2
            ),
        )

        # Workers log in as their service; the internet-facing APIs (and the routing clock,
        # which never talks to Kafka) get no Kafka secret.
        broker_pid = int((tmp_path / "kafka" / "broker.pid").read_text())
        started = children(proc.pid)
        assert broker_pid in started
        users = dict(kafka_user_of(pid) for pid in started - {broker_pid})
        assert users == {
            "issuer api": None,
            "referrals api": None,
            "referrals relay": "referrals",
            "referrals consumer": "referrals",
            "routing api": None,
            "routing relay": "routing",
            "routing consumer": "routing",
            "routing clock": None,  # writes only its database; the relay publishes
            "audit api": "audit",  # verification reads the checkpoints back from Kafka
            "audit consumer": "audit",
            "audit relay": "audit",
            "portal api": None,  # serves browsers; calls the referrals API only
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

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        wait_for(
            "every service process and the broker to exit",
            lambda: not any(alive(p) for p in started),
            timeout=10,
        )
        assert proc.stdout is not None
        assert "stopped everything" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            # Ctrl-C first, so devstack.run stops its children; only then force it.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
