"""FastAPI's dependency solving and parameter validation per request on the referrals API's
routes, in one process (issue 21): ``solve_dependencies`` for the routes of a journey
(``POST /referrals``, ``GET /referrals/{id}``, ``accept``, ``start``, ``complete``) of the
real app, with the headers the stack's callers send (a bearer token, X-Practitioner,
Idempotency-Key, If-Match) and the identity left in the request's state as the
``Authenticate`` middleware leaves it. This is what FastAPI does between routing and the
route's own code: the identity, the caller, the unit of work, the headers and the body; not
the middleware, the route or the answer.

The code under test is frozen first (``snapshot.py``): the working tree, and with --ref REV
that revision as well; each round measures every variant in a fresh process, alternating the
order. Reported: CPU µs per request by route and per journey (the five requests), medians
over --rounds, and the tree's ratio to REV.

    .venv/bin/python bench/referrals_dependencies.py [--n 3000] [--rounds 7] [--ref main]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import per_route_table
from referrals_journey import BODY, STEPS

RID = "0192d1c4-0000-7000-8000-000000000001"
ROUTES = (
    ("create", "POST", "/referrals", BODY),
    ("read", "GET", f"/referrals/{RID}", None),
    *((action, "POST", f"/referrals/{RID}/{action}", body) for action, body, _ in STEPS),
)


async def _solve(
    scope: dict[str, Any], identity: Any, dependant: Any, embed: bool, body: Any, times: int
) -> float:
    """CPU µs per ``solve_dependencies`` of ``dependant`` for a request of ``scope``, as
    FastAPI's request handler calls it (its two exit stacks included)."""
    from fastapi.dependencies.utils import solve_dependencies
    from rx_web.auth import STATE_KEY
    from starlette.requests import Request

    started = time.process_time()
    for _ in range(times):
        request = Request({**scope, "state": {STATE_KEY: identity}})
        async with AsyncExitStack() as inner, AsyncExitStack() as function:
            request.scope["fastapi_inner_astack"] = inner
            request.scope["fastapi_function_astack"] = function
            solved = await solve_dependencies(
                request=request,
                dependant=dependant,
                body=body,
                async_exit_stack=inner,
                embed_body_fields=embed,
            )
        if solved.errors:
            raise RuntimeError(f"{scope['path']}: {solved.errors}")
    return 1e6 * (time.process_time() - started) / times


def measure(n: int, workdir: Path) -> dict[str, Any]:
    """In the subprocess: CPU µs per ``solve_dependencies`` for each route of ``ROUTES``."""
    os.environ.update(RX_ENV="development", RX_RATE_LIMIT_PER_SECOND="0")
    import referrals
    from fastapi import routing
    from referrals.bootstrap import bootstrap
    from referrals.config import Settings
    from referrals.entrypoints.api.app import create_app
    from rx_contracts import Identity, Role

    settings = Settings(database_url=f"sqlite:///{workdir}/deps-{os.getpid()}.db")
    app = create_app(settings)
    app.state.container = bootstrap(settings)  # as the lifespan would (get_uow needs it)
    identity = Identity(
        organisation="RXA01", roles=frozenset({Role.PROVIDER}), practitioner="N7654321"
    )
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"authorization", b"Bearer eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl"),
        (b"x-practitioner", b"N7654321"),
        (b"content-type", b"application/json"),
        (b"idempotency-key", b"5f0c6e4e-52b4-4b0e-9d7e-6f2f7d1c8a11"),
        (b"if-match", b'"3"'),
    ]
    contexts = list(routing.iter_route_contexts(app.routes))
    loop = asyncio.new_event_loop()
    result: dict[str, Any] = {"code": str(Path(referrals.__file__).resolve()), "us": {}}
    for name, method, path, body in ROUTES:
        scope: dict[str, Any] = {"type": "http", "method": method, "path": path}
        scope |= {"raw_path": path.encode(), "root_path": "", "query_string": b""}
        scope |= {"headers": headers, "http_version": "1.1", "scheme": "http", "app": app}
        scope |= {"server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1)}
        matched = [c for c in contexts if c.matches(scope)[0] == routing.Match.FULL]
        route = matched[0]
        scope.update(route.matches(scope)[1])  # path_params, endpoint

        route_input = (scope, identity, route.dependant, route._embed_body_fields, body)
        loop.run_until_complete(_solve(*route_input, 200))  # warm up
        result["us"][name] = loop.run_until_complete(_solve(*route_input, n))
    result["us"]["journey"] = sum(result["us"][name] for name, *_ in ROUTES)
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
    names = [name for name, *_ in ROUTES] + ["journey"]
    per_route_table(__file__, args, names, "journey", prefix="referrals-deps-", label="per journey")
    return 0


if __name__ == "__main__":
    sys.exit(main())
