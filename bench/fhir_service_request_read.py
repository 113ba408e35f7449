"""CPU of a FHIR ServiceRequest read (GET /fhir/R4/ServiceRequest/{id}, in process, SQLite)
with the referral's documents looked up for ``supportingInfo`` vs without that look-up (the
repository's ``attachment_ids`` answering nothing, as before documents were named): what the
one extra query per read costs. Alternating order per round, CPU time of this process, median
of the per-round ratios.

    .venv/bin/python bench/fhir_service_request_read.py [--rounds 7] [--reads 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from referrals.adapters.repository import ReferralRepository
from referrals.config import Settings
from referrals.entrypoints.api.app import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services/referrals"))
from tests.fhir_support import BASE, GP, create

LOOK_UP = ReferralRepository.attachment_ids


def _none(self: ReferralRepository, referral_ids: list[str]) -> dict[str, list[str]]:
    return {}


def measure(client: TestClient, rid: str, reads: int, look_up: bool) -> float:
    ReferralRepository.attachment_ids = LOOK_UP if look_up else _none  # type: ignore[method-assign]
    start = time.process_time()
    for _ in range(reads):
        response = client.get(f"{BASE}/ServiceRequest/{rid}", headers=GP)
        assert response.status_code == 200
    return (time.process_time() - start) / reads


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()
    os.environ.update(RX_ENV="development", RX_AUTH="dev-headers", RX_RATE_LIMIT_PER_SECOND="0")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/r.db"
        with TestClient(create_app(Settings(database_url=url))) as client:
            rid = create(client)
            for name in ("a.txt", "b.txt"):
                client.post(
                    f"/referrals/{rid}/attachments",
                    params={"filename": name},
                    content=b"x" * 200_000,
                    headers={
                        **GP,
                        "content-type": "text/plain",
                        "Idempotency-Key": str(uuid.uuid4()),
                    },
                )
            measure(client, rid, 50, True)  # warm up
            rows: list[dict[str, Any]] = []
            for round_ in range(args.rounds):
                order = (True, False) if round_ % 2 == 0 else (False, True)
                got = {look_up: measure(client, rid, args.reads, look_up) for look_up in order}
                rows.append({"with": got[True], "without": got[False]})
    ratios = [r["with"] / r["without"] for r in rows]
    print(
        f"CPU ms per read, with documents: {statistics.median(r['with'] for r in rows) * 1e3:.3f}"
    )
    print(f"CPU ms per read, without: {statistics.median(r['without'] for r in rows) * 1e3:.3f}")
    print(f"ratio with/without, median of {args.rounds} rounds: {statistics.median(ratios):.3f}")
    print("per-round ratios:", " ".join(f"{r:.3f}" for r in ratios))


if __name__ == "__main__":
    main()
