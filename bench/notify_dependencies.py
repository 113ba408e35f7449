"""FastAPI's dependency solving and parameter validation per request on the notify API's
writes that take If-Match or an Idempotency-Key, in one process (issue 21): the sibling of
``referrals_dependencies.py`` (same measurement, ``_solve``) for ``POST /subscriptions``,
``PATCH /subscriptions/{id}``, its ``secret`` and ``resend`` POSTs, and the FHIR
``POST /fhir/R4/Subscription`` and ``PUT /fhir/R4/Subscription/{id}`` (with and without the
optional header), plus ``GET /subscriptions/{id}`` as a control that did not change. The
identity is left in the request's state as the ``Authenticate`` middleware leaves it.

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV
that revision as well; each round measures every variant in a fresh process, alternating the
order. Reported: CPU µs per request by route and for the writes together, medians over
--rounds, and the tree's ratio to REV.

    .venv/bin/python bench/notify_dependencies.py [--n 3000] [--rounds 7] [--ref main]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import per_route_table
from referrals_dependencies import _solve

SID = "0192d1c4-0000-7000-8000-000000000001"
KEY = (b"idempotency-key", b"5f0c6e4e-52b4-4b0e-9d7e-6f2f7d1c8a11")
IF_MATCH = (b"if-match", b'"3"')
WEBHOOK = {"topic": "referrals-sent", "endpoint": "https://ehr.example.org/hook"}
FHIR = {
    "resourceType": "Subscription",
    "status": "requested",
    "reason": "offers",
    "criteria": "http://referral-exchange.example.org/fhir/SubscriptionTopic/referrals-offered",
    "channel": {
        "type": "rest-hook",
        "endpoint": "https://ehr.example.org/fhir",
        "payload": "application/fhir+json",
    },
}
ROUTES: tuple[tuple[str, str, str, Any, tuple[tuple[bytes, bytes], ...]], ...] = (
    ("create", "POST", "/subscriptions", WEBHOOK, (KEY,)),
    ("update", "PATCH", f"/subscriptions/{SID}", {"status": "off"}, (IF_MATCH,)),
    ("rotate", "POST", f"/subscriptions/{SID}/secret", {}, (KEY,)),
    ("resend", "POST", f"/subscriptions/{SID}/resend", {"from_event_number": 1}, (KEY,)),
    ("fhir create", "POST", "/fhir/R4/Subscription", FHIR, (KEY,)),
    ("fhir create, no key", "POST", "/fhir/R4/Subscription", FHIR, ()),
    ("fhir update", "PUT", f"/fhir/R4/Subscription/{SID}", FHIR, (IF_MATCH,)),
    ("fhir update, no If-Match", "PUT", f"/fhir/R4/Subscription/{SID}", FHIR, ()),
    ("read (control)", "GET", f"/subscriptions/{SID}", None, ()),
)
WRITES = [name for name, *_ in ROUTES if name != "read (control)"]


def measure(n: int, workdir: Path) -> dict[str, Any]:
    """In the subprocess: CPU µs per ``solve_dependencies`` for each route of ``ROUTES``."""
    os.environ.update(RX_ENV="development", RX_RATE_LIMIT_PER_SECOND="0")
    import notify
    from fastapi import routing
    from notify.bootstrap import bootstrap
    from notify.config import Settings
    from notify.entrypoints.api.app import create_app
    from rx_contracts import Identity, Role

    settings = Settings(database_url=f"sqlite:///{workdir}/deps-{os.getpid()}.db")
    app = create_app(settings)
    app.state.container = bootstrap(settings)  # as the lifespan would (get_uow needs it)
    identity = Identity(
        organisation="RXA01", roles=frozenset({Role.PROVIDER}), practitioner="N7654321"
    )
    common = [
        (b"host", b"127.0.0.1:8000"),
        (b"authorization", b"Bearer eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl"),
        (b"x-practitioner", b"N7654321"),
        (b"content-type", b"application/json"),
    ]
    contexts = list(routing.iter_route_contexts(app.routes))
    loop = asyncio.new_event_loop()
    result: dict[str, Any] = {"code": str(Path(notify.__file__).resolve()), "us": {}}
    for name, method, path, body, headers in ROUTES:
        scope: dict[str, Any] = {"type": "http", "method": method, "path": path}
        scope |= {"raw_path": path.encode(), "root_path": "", "query_string": b""}
        scope |= {"headers": [*common, *headers], "http_version": "1.1", "scheme": "http"}
        scope |= {"app": app, "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1)}
        matched = [c for c in contexts if c.matches(scope)[0] == routing.Match.FULL]
        route = matched[0]
        scope.update(route.matches(scope)[1])  # path_params, endpoint

        route_input = (scope, identity, route.dependant, route._embed_body_fields, body)
        loop.run_until_complete(_solve(*route_input, 200))  # warm up
        result["us"][name] = loop.run_until_complete(_solve(*route_input, n))
    result["us"]["writes (the eight)"] = sum(result["us"][name] for name in WRITES)
    loop.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="requests per route per measurement")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ref", help="also measure this git revision, e.g. main")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.n, args.workdir)))
        return 0
    total = "writes (the eight)"
    names = [name for name, *_ in ROUTES] + [total]
    per_route_table(__file__, args, names, total, prefix="notify-deps-", label="for the writes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
