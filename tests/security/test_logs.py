"""The real issuer and referrals API, logging at DEBUG, driven through the requests that carry
secrets and patient data: none of it appears in their logs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from devstack.ports import free_ports
from devstack.stack import issuer_environment, service_environment
from issuer.clients import demo_secret

pytestmark = pytest.mark.e2e

PATIENT = {
    "nhs_number": "9434765919",
    "name": "Zebedee Quartermaine",
    "birth_date": "1941-03-07",
    "postcode": "BS5 0AA",
}
SUMMARY = "Found on the floor by neighbour Mrs Ottoline Vance"
NEVER_LOGGED = [
    *PATIENT.values(),
    "943 476 5919",
    "Ottoline Vance",
    "b81001-demo-secret",
    "ops-demo-secret",
    "wrong-secret-guess",
    "discharge-zebedee",
]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The issuer and the referrals API as ``make run`` starts them, but at DEBUG."""
    issuer_port, referrals_port = free_ports(2)
    issuer = f"http://127.0.0.1:{issuer_port}"
    common = {**os.environ, "LOG_LEVEL": "DEBUG"}
    specs = {
        "issuer": {**common, **issuer_environment(data_dir=tmp_path, port=issuer_port)},
        "referrals": {
            **common,
            **service_environment(
                "referrals",
                data_dir=tmp_path,
                bootstrap_servers="127.0.0.1:9",
                port=referrals_port,
                issuer_url=issuer,
            ),
        },
    }
    procs = {}
    logs = {}
    for name, env in specs.items():
        logs[name] = tmp_path / f"{name}.log"
        with logs[name].open("wb") as out:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", name, "api"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
    urls = {"issuer": issuer, "referrals": f"http://127.0.0.1:{referrals_port}"}
    try:
        for name, url in urls.items():
            deadline = time.monotonic() + 60
            while True:
                assert procs[name].poll() is None, logs[name].read_text()
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{name} did not start"
                time.sleep(0.1)
        yield {**urls, **{f"{name}_log": str(path) for name, path in logs.items()}}
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=10)


def test_secrets_and_patient_identifiers_never_reach_the_logs(processes: dict[str, str]) -> None:
    issuer, referrals = processes["issuer"], processes["referrals"]

    def token(client_id: str, secret: str) -> httpx.Response:
        return httpx.post(
            f"{issuer}/oauth2/token",
            data={"grant_type": "client_credentials", "audience": "referrals"},
            auth=(client_id, secret),
        )

    assert token("b81001", "wrong-secret-guess").status_code == 401
    access = token("b81001", demo_secret("b81001")).json()["access_token"]
    gp = {"Authorization": f"Bearer {access}", "X-Practitioner": "G1234567"}
    body = {
        "referrer": {"organisation": "B81001"},
        "patient": PATIENT,
        "service_type": "urgent-community-response",
        "clinical_summary": SUMMARY,
    }
    created = httpx.post(
        f"{referrals}/referrals", json=body, headers={**gp, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert httpx.get(f"{referrals}/referrals/{rid}", headers=gp).status_code == 200
    upload = httpx.post(
        f"{referrals}/referrals/{rid}/attachments",
        params={"filename": "discharge-zebedee.txt"},
        content=f"{PATIENT['name']} NHS 943 476 5919".encode(),
        headers={**gp, "content-type": "text/plain", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert upload.status_code == 201, upload.text
    bad = {**body, "patient": {**PATIENT, "nhs_number": "9434765918"}}
    refused = httpx.post(
        f"{referrals}/referrals", json=bad, headers={**gp, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert refused.status_code == 422
    for forged in (access[:-4] + "AAAA", access.replace(".", ".x", 1)):
        assert (
            httpx.get(
                f"{referrals}/referrals/{rid}", headers={"Authorization": f"Bearer {forged}"}
            ).status_code
            == 401
        )

    for name in ("issuer", "referrals"):
        text = Path(processes[f"{name}_log"]).read_text()
        assert "DEBUG" in text, f"{name} logged nothing at DEBUG: the test would prove nothing"
        found = [secret for secret in [*NEVER_LOGGED, access] if secret in text]
        assert not found, f"{name} logged {found}"
        assert "eyJ" not in text, f"{name} logged a token"
