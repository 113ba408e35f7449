"""`make run` (python -m devstack.run): prints where everything is, serves referrals, and
Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from devstack.ports import free_ports

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


def test_make_run_prints_its_urls_serves_a_referral_and_ctrl_c_stops_everything(
    kafka_bootstrap, tmp_path
) -> None:
    names = ("ISSUER_PORT", "REFERRALS_PORT", "ROUTING_PORT", "AUDIT_PORT")
    ports = dict(zip(names, map(str, free_ports(len(names))), strict=True))
    env = {
        **os.environ,
        **ports,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RX_RUN_DIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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
        banner = "".join(lines)
        for port in ports.values():
            assert f"http://127.0.0.1:{port}" in banner
        assert kafka_bootstrap in banner

        referrals = f"http://127.0.0.1:{ports['REFERRALS_PORT']}"
        issuer = f"http://127.0.0.1:{ports['ISSUER_PORT']}"
        assert f"{issuer}/oauth2/token" in banner
        rid = submit_to(referrals, issuer)["id"]
        audit = f"http://127.0.0.1:{ports['AUDIT_PORT']}/audit/entries"
        ops = {"Authorization": f"Bearer {token(issuer, 'ops', 'audit')}"}
        wait_for(
            "the referral in the audit log",
            lambda: len(httpx.get(audit, params={"referral_id": rid}, headers=ops).json()) == 2,
        )

        started = children(proc.pid)
        assert len(started) == 9, (
            f"expected the issuer and 8 service processes, found {len(started)}"
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        wait_for(
            "every service process to exit", lambda: not any(alive(p) for p in started), timeout=10
        )
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
