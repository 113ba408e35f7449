"""CPU cost of the FHIR interface's hot path with and without the fhir.resources model library:
building and serialising N ServiceRequests, and reading N transaction Bundles, the way the
referrals service does it (plain dicts out, our own strict Pydantic models in) against the
library's R4B models doing the same, in the same process. Medians of --repeats runs.

    .venv/bin/python bench/fhir_models.py [--n 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.servicerequest import ServiceRequest
from referrals.domain.model import Patient, Referral
from referrals.entrypoints.fhir import inbound, resources
from referrals.service_layer.versions import ReferralVersion
from rx_contracts import CohortFlags, Priority, ServiceType

sys.path.insert(0, str(Path(__file__).resolve().parent))
from referrals_post import FHIR_BODY

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def referral(i: int) -> ReferralVersion:
    return ReferralVersion(
        Referral(
            id=f"0193a0c4-0000-7000-8000-{i:012d}",
            referrer_org="B81001",
            practitioner="G1234567",
            patient=Patient("BS5 0AA", "9434765919", "Alex Smith", "1941-03-07"),
            service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
            priority=Priority.URGENT,
            cohort=CohortFlags(frailty=True),
            reason_code="129839007",
            reason_text="Fall at home",
            clinical_summary="Lives alone; fell twice this week",
            created_at=NOW,
            due_at=NOW,
        ),
        NOW,
    )


def per_item_us(work: Callable[[int], Any], n: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.process_time()
        for i in range(n):
            work(i)
        runs.append((time.process_time() - started) / n * 1e6)
    return statistics.median(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    found = [referral(i) for i in range(args.n)]
    bundle = json.loads(FHIR_BODY)
    rows = {
        "build + serialise a ServiceRequest: plain dict + json.dumps (ours)": lambda i: json.dumps(
            resources.service_request(found[i])
        ),
        "build + serialise a ServiceRequest: fhir.resources R4B model": lambda i: (
            ServiceRequest.model_validate(resources.service_request(found[i])).model_dump_json()
        ),
        "read a transaction Bundle: our strict models (ours)": lambda i: (
            inbound.TransactionBundle.model_validate(bundle)
        ),
        "read a transaction Bundle: fhir.resources R4B Bundle": lambda i: Bundle.model_validate(
            bundle
        ),
    }
    results = {name: per_item_us(work, args.n, args.repeats) for name, work in rows.items()}
    for name, us in results.items():
        print(f"{us:9.1f} µs CPU  {name}")
    names = list(results)
    print(
        f"ServiceRequest out: the library costs {results[names[1]] / results[names[0]]:.0f}x ours"
    )
    print(f"Bundle in: the library costs {results[names[3]] / results[names[2]]:.0f}x ours")
    return 0


if __name__ == "__main__":
    sys.exit(main())
