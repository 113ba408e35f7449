"""The referrals API's per-request pieces changed for issue 21, old way against new, in one
process (CPU time, medians of rounds, old and new alternating):

- rendering a referral's answer: ``json.dumps`` (Starlette's ``JSONResponse``) against
  pydantic-core (``rx_web.responses.JSONResponse``), and for ``GET /referrals/{id}``
  ``model_dump`` then ``json.dumps`` against ``model_dump_json``;
- a JSON column's text (the stored response, a superseded version): ``json.dumps`` against
  ``referrals.bootstrap.json_text``;
- a SQLite transaction staging an outbox row: in an ORM Session (the unit of work before)
  against the unit of work's bare connection (``referrals.adapters.transaction``), wake-up
  included;
- the edge of a service's stack: request metrics, log ids, trace hop and security headers as
  four middlewares (before) against one layer (``rx_web.metrics.Edge``), over ASGI in process;
- uvicorn answering over loopback (a server process each, keep-alive client here): its
  httptools protocol against ``rx_web.uvicorn_server.OneWriteProtocol``, the server's CPU;
- FastAPI's dependency solving, over ASGI in process with a bare app: what a dependency level
  costs, and what the identity dependency does (the "before" of those lines is the cheaper
  route, the "after" the dearer);
- authenticating a bearer token already verified: the identity made per request against the
  one kept for the same claims and X-Practitioner;
- a created referral's ``Location``: Starlette's ``request.url_for`` (the routes searched per
  request) against ``rx_web.urls.url_for`` (the route's path kept), on the real app;
- the layers and routing before a route, over ASGI in process, the journey's five requests
  to trivial routes laid out as the referrals API's: the service's six layers of its own and
  its routers included lazily (before) against three layers (``ServiceLayer``, ``Edge``,
  ``rx_web.gate.Gate``) and the routes added to the app (``rx_web.routers``).

    .venv/bin/python bench/api_request_parts.py [--rounds 7] [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _timed(fn: Callable[[], Any], n: int) -> float:
    """CPU µs per call of ``fn`` over ``n`` calls."""
    started = time.process_time()
    for _ in range(n):
        fn()
    return 1e6 * (time.process_time() - started) / n


def _compare(name: str, old: Callable[[], Any], new: Callable[[], Any], args: Any) -> None:
    old(), new()
    olds: list[float] = []
    news: list[float] = []
    for r in range(args.rounds):
        pair = [(olds, old), (news, new)] if r % 2 == 0 else [(news, new), (olds, old)]
        for into, fn in pair:
            into.append(_timed(fn, args.n))
    o, n = statistics.median(olds), statistics.median(news)
    ratios = [b / a for a, b in zip(olds, news, strict=True)]
    print(
        f"{name}: before {o:.1f} µs, after {n:.1f} µs, saved {o - n:.1f} µs "
        f"(median ratio {statistics.median(ratios):.3f})",
        flush=True,
    )


def _referral_body() -> tuple[Any, dict[str, Any]]:
    """A referral as ``to_public`` renders it after ``complete``, and its JSON-mode dict."""
    from datetime import UTC, datetime

    from referrals.domain.caller import Caller
    from referrals.domain.model import Referral
    from referrals.entrypoints.api.presenters import to_public
    from referrals.entrypoints.api.schemas import ReferralCreate
    from referrals_journey import BODY
    from rx_contracts import Identity, ProviderType, Role

    gp = Caller.of(Identity(organisation="B81001", roles=frozenset({Role.PROVIDER})))
    now = datetime.now(UTC)
    create = ReferralCreate.model_validate(BODY)
    referral = Referral.submit(
        referral_id="0192d1c4-0000-7000-8000-000000000001",
        caller=gp,
        referrer_org="B81001",
        patient=create.patient.patient(),
        service_type=create.service_type,
        priority=create.priority,
        cohort=create.cohort.flags(),
        reason_code=None,
        reason_text="falls",
        clinical_summary=create.clinical_summary,
        now=now,
    )
    referral.record_routing("RXA01", ProviderType.RAPID_RESPONSE, now, "ev-1")
    model = to_public(referral, gp)
    return model, model.model_dump(mode="json")


def render(args: Any) -> None:
    from fastapi.responses import JSONResponse as Before
    from referrals.bootstrap import json_text
    from referrals.entrypoints.api.idempotency import url_path
    from rx_web.responses import JSONResponse as After
    from starlette.requests import Request

    model, body = _referral_body()
    path = "/referrals/0192d1c4-0000-7000-8000-000000000001/accept"
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
    scope = {"type": "http", "path": path, "headers": headers, "query_string": b""}
    scope |= {"server": ("127.0.0.1", 8000), "scheme": "http", "root_path": ""}

    def request() -> Request:
        return Request(scope)  # a new one each time: a request caches its URL

    assert Before(body).body == After(body).body
    _compare(
        "POST answer (JSONResponse of the body)", lambda: Before(body), lambda: After(body), args
    )
    _compare(
        "GET answer (the model to bytes)",
        lambda: json.dumps(
            model.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")
        ).encode(),
        model.model_dump_json,
        args,
    )
    _compare("JSON column text", lambda: json.dumps(body), lambda: json_text(body), args)
    _compare(
        "the fingerprint's path", lambda: request().url.path, lambda: url_path(request()), args
    )


def dependencies(args: Any) -> None:
    """What FastAPI's dependency solving costs per request in this version: a route with no
    dependency against one with one level (which reads the identity), one level against three,
    and one level against ``rx_web.identity.IdentityDep`` (``get_identity`` with the bearer
    scheme and X-Practitioner declared for the API documentation)."""
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import Response
    from rx_contracts import Identity, Role
    from rx_web.auth import STATE_KEY
    from rx_web.identity import IdentityDep

    async def level1(request: Request) -> Identity:
        outcome: Identity = request.state.identity
        return outcome

    async def level2(identity: Annotated[Identity, Depends(level1)]) -> Identity:
        return identity

    async def level3(identity: Annotated[Identity, Depends(level2)]) -> Identity:
        return identity

    app = FastAPI()

    @app.get("/none/{rid}")
    async def none(rid: str, request: Request) -> Response:
        return Response(b"{}")

    @app.get("/one/{rid}")
    async def one(rid: str, caller: Annotated[Identity, Depends(level1)]) -> Response:
        return Response(b"{}")

    @app.get("/three/{rid}")
    async def three(rid: str, caller: Annotated[Identity, Depends(level3)]) -> Response:
        return Response(b"{}")

    @app.get("/identity/{rid}")
    async def identity_route(rid: str, caller: IdentityDep) -> Response:
        return Response(b"{}")

    identity = Identity(organisation="RXA01", roles=frozenset({Role.PROVIDER}))
    loop = asyncio.new_event_loop()

    async def send(message: Any) -> None:
        pass

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    def call(path: str) -> Callable[[], None]:
        def once() -> None:
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": [(b"authorization", b"Bearer x"), (b"x-practitioner", b"N7654321")],
                "client": ("127.0.0.1", 1),
                "server": ("127.0.0.1", 80),
                "state": {STATE_KEY: identity, "identity": identity},
            }
            loop.run_until_complete(app(scope, receive, send))

        return once

    _compare("bare app GET: no dependency / one level", call("/none/1"), call("/one/1"), args)
    _compare("bare app GET: one level / three levels", call("/one/1"), call("/three/1"), args)
    _compare("bare app GET: one level / IdentityDep", call("/one/1"), call("/identity/1"), args)


def transactions(args: Any) -> None:
    """One SQLite transaction staging one outbox row as the unit of work does it: an ORM
    Session (its connection, ``insert_outbox_rows``, commit, close) against the bare
    connection of ``referrals.adapters.transaction.Transaction``; the same engine
    (``rx_messaging.database.make_engine``: BEGIN IMMEDIATE and the process's lock either way)
    and the same wake-up after the commit."""
    import itertools
    import tempfile

    from referrals.adapters.transaction import Transaction
    from rx_contracts import examples, wrap
    from rx_messaging.database import make_engine
    from rx_messaging.outbox import insert_outbox_rows, outbox_rows
    from rx_messaging.tables import OutboxMessage
    from sqlmodel import Session, SQLModel

    row = outbox_rows(wrap(examples.referral_submitted("r-1"), source="/bench"), ["x"])[0]
    ids = itertools.count()

    def rows() -> list[dict[str, Any]]:
        return [{**row, "event_id": f"e-{next(ids)}"}]  # the key is (event id, topic)

    with tempfile.TemporaryDirectory(prefix="api-parts-") as tmp:
        engine = make_engine(f"sqlite:///{tmp}/parts.db")
        SQLModel.metadata.create_all(engine, tables=[OutboxMessage.__table__])  # type: ignore[attr-defined]

        def session() -> None:
            s = Session(engine, expire_on_commit=False)
            insert_outbox_rows(s, rows())
            s.commit()
            s.close()

        def connection() -> None:
            t = Transaction(engine)
            t.insert_outbox_rows(rows())
            t.commit()

        _compare("a transaction: Session / bare connection", session, connection, args)
        engine.dispose()


def edge(args: Any) -> None:
    """A bare app's GET over ASGI in process: behind the four edge middlewares as installed
    before (request metrics outermost, log ids, trace hop, security headers) against
    ``rx_web.metrics.Edge`` doing the same in one layer."""
    from fastapi import FastAPI
    from fastapi.responses import Response
    from rx_telemetry.http import RequestMetrics
    from rx_telemetry.logs import RequestContext
    from rx_telemetry.tracing import TraceContext
    from rx_web.headers import SecureHeaders, SecurityHeaders
    from rx_web.metrics import Edge

    def app(layers: list[tuple[Any, dict[str, Any]]]) -> Any:
        bare = FastAPI()

        @bare.get("/r/{referral_id}")
        async def read(referral_id: str) -> Response:
            return Response(b'{"id":"1"}', media_type="application/json")

        for cls, options in layers:
            bare.add_middleware(cls, **options)
        return bare

    before = app(
        [
            (SecurityHeaders, {}),
            (TraceContext, {}),
            (RequestContext, {}),
            (RequestMetrics, {"service": "bench"}),
        ]
    )
    after = app(
        [(Edge, {"service": "bench", "log_ids": True, "trace": True, "headers": SecureHeaders()})]
    )
    scope = {"type": "http", "method": "GET", "path": "/r/1", "raw_path": b"/r/1"}
    scope |= {"root_path": "", "query_string": b"", "http_version": "1.1", "scheme": "http"}
    scope |= {"headers": [(b"host", b"x"), (b"x-correlation-id", b"c-1")]}
    scope |= {"server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
    loop = asyncio.new_event_loop()
    answers: list[Any] = []

    async def send(message: Any) -> None:
        answers.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    def call(asgi: Any) -> Callable[[], None]:
        def once() -> None:
            answers.clear()
            loop.run_until_complete(asgi(dict(scope), receive, send))

        return once

    call(before)()
    first = answers[0]["headers"]
    call(after)()
    assert answers[0]["headers"] == first, "the same headers either way"
    _compare("a GET behind the edge: four layers / one", call(before), call(after), args)
    loop.close()


def _serve(protocol: str, port: int) -> Any:
    """A uvicorn server process with ``protocol`` answering a fixed JSON body."""
    import subprocess

    code = f"""
import uvicorn
from rx_web.uvicorn_server import OneWriteProtocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"300")]
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": b"x" * 300}})
uvicorn.Server(uvicorn.Config(app, port={port}, http={protocol}, log_config=None,
    lifespan="off", access_log=False, timeout_keep_alive=3600)).run()
"""
    return subprocess.Popen([sys.executable, "-c", code])


def one_write(args: Any) -> None:
    """uvicorn over loopback: the server process's CPU per answer, its httptools protocol
    (headers and body written separately) against ``OneWriteProtocol`` (one write), a
    keep-alive client here sending one request at a time."""
    import socket
    from pathlib import Path as _Path

    def cpu(pid: int) -> float:
        fields = _Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    servers = {}
    for name in ("HttpToolsProtocol", "OneWriteProtocol"):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        servers[name] = (_serve(name, port), port)
    try:
        clients = {}
        for name, (_process, port) in servers.items():
            for _ in range(200):
                try:
                    clients[name] = socket.create_connection(("127.0.0.1", port))
                    break
                except OSError:
                    time.sleep(0.05)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

        def run(name: str) -> Callable[[], None]:
            sock = clients[name]

            def once() -> None:
                sock.sendall(request)
                got = b""
                while not got.endswith(b"x" * 300):
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise RuntimeError(f"{name}: the server closed the connection")
                    got += chunk

            return once

        n = args.n * 3
        results: dict[str, list[float]] = {name: [] for name in servers}
        for r in range(args.rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in order:
                process = servers[name][0]
                before = cpu(process.pid)
                once = run(name)
                for _ in range(n):
                    once()
                results[name].append(1e6 * (cpu(process.pid) - before) / n)
        o = statistics.median(results["HttpToolsProtocol"])
        w = statistics.median(results["OneWriteProtocol"])
        ratios = [
            b / a
            for a, b in zip(results["HttpToolsProtocol"], results["OneWriteProtocol"], strict=True)
        ]
        print(
            f"uvicorn answer, server CPU: two writes {o:.1f} µs, one write {w:.1f} µs, "
            f"saved {o - w:.1f} µs (median ratio {statistics.median(ratios):.3f})",
            flush=True,
        )
    finally:
        for process, _port in servers.values():
            process.terminate()
            process.wait()


def native_telemetry(args: Any) -> None:
    """FastAPI's check, on every request, for an OpenTelemetry provider to report to: its
    defaults (tracing, metrics, logs) against ``rx_web.app.NATIVE_TELEMETRY`` (tracing only),
    with no provider installed, as in the services."""
    from fastapi import FastAPI
    from rx_web.app import NATIVE_TELEMETRY

    default, ours = FastAPI(), FastAPI(telemetry=NATIVE_TELEMETRY)
    _compare(
        "FastAPI's telemetry check per request: default / tracing only",
        default._native_telemetry.enabled,
        ours._native_telemetry.enabled,
        args,
    )


def identity(args: Any) -> None:
    """``Authenticator.authenticate`` of a bearer token the verifier has checked already (its
    cache answers, as for every request of a journey but the first): the identity made from
    the claims on every request (before) against the one kept for the same claims and
    X-Practitioner (``rx_web.auth``)."""
    from rx_web.auth import Authenticator, AuthScheme
    from rx_web.tokens import identity_from_claims

    claims = {"org": "RXA01", "roles": ["provider"], "client_id": "demo-provider", "exp": 2e9}

    class Verifier:
        async def verify(self, token: str) -> dict[str, Any]:
            return claims

    class Remaking(Authenticator):
        async def authenticate(self, headers: Any) -> Any:
            await self.verifier.verify(headers["authorization"][7:])  # type: ignore[union-attr]
            return identity_from_claims(claims, headers.get("x-practitioner"))

    headers = {"authorization": "Bearer eyJ.e30.c2ln", "x-practitioner": "N7654321"}
    loop = asyncio.new_event_loop()
    before = Remaking(AuthScheme.TOKENS, "referrals", Verifier())  # type: ignore[arg-type]
    after = Authenticator(AuthScheme.TOKENS, "referrals", Verifier())  # type: ignore[arg-type]
    _compare(
        "authenticating a verified token: identity made per request / kept",
        lambda: loop.run_until_complete(before.authenticate(headers)),
        lambda: loop.run_until_complete(after.authenticate(headers)),
        args,
    )
    loop.close()


def location(args: Any) -> None:
    """The ``Location`` of ``POST /referrals``'s 201 on the referrals API's own app (its JSON
    and FHIR routes): ``request.url_for`` against ``rx_web.urls.url_for``, each on a fresh
    request as in the service."""
    import tempfile

    from referrals.config import Settings
    from referrals.entrypoints.api.app import create_app
    from rx_web.urls import url_for
    from starlette.requests import Request

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(database_url=f"sqlite:///{tmp}/location.db"))
        scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/referrals"}
        scope |= {"app": app, "router": app.router, "scheme": "http", "root_path": ""}
        scope |= {"server": ("127.0.0.1", 8000), "query_string": b""}
        scope |= {"headers": [(b"host", b"127.0.0.1:8000")]}
        referral_id = "0d9f5b2e-6c1a-4f7e-9a3b-2c8d7e6f5a41"
        old = str(Request(scope).url_for("read_referral", referral_id=referral_id))
        new = str(url_for(Request(scope), "read_referral", referral_id=referral_id))
        assert old == new, (old, new)
        _compare(
            "a created referral's Location: url_for / rx_web.urls.url_for",
            lambda: Request(scope).url_for("read_referral", referral_id=referral_id),
            lambda: url_for(Request(scope), "read_referral", referral_id=referral_id),
            args,
        )


def layers(args: Any) -> None:
    """The journey's five requests (create, read, accept, start, complete) over ASGI in
    process, to trivial routes at the referrals API's paths, with its layers and routing as
    they were (the in-flight count and the FHIR translation as two layers, authentication,
    rate limit and body size as three, five routers included lazily) and as they are (one
    service layer, one gate, the routes added to the app). Edge and FastAPI's own layers in
    both; development identity headers, the rate limit on (high), a body of declared length."""
    from fastapi import APIRouter, FastAPI
    from fastapi.responses import Response
    from referrals.entrypoints.api.app import ServiceLayer
    from referrals.entrypoints.api.deps import InFlight
    from referrals.entrypoints.fhir.outcomes import problems_as_outcomes
    from rx_web.auth import Authenticate, Authenticator, AuthScheme
    from rx_web.gate import Gate
    from rx_web.headers import SecureHeaders
    from rx_web.limits import BodyLimits, BodySizeLimit
    from rx_web.metrics import Edge
    from rx_web.ratelimit import RateLimit, RateLimiter, TokenBuckets
    from rx_web.routers import include_routes
    from starlette.types import ASGIApp, Receive, Scope, Send

    class ProblemsAsOperationOutcome:  # as it was: a layer of its own
        def __init__(self, app: ASGIApp, prefix: str) -> None:
            self.app, self.prefix = app, prefix

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not scope.get("path", "").startswith(self.prefix):
                await self.app(scope, receive, send)
                return
            await self.app(scope, receive, problems_as_outcomes(send))

    class CountInFlight:  # as it was: a layer of its own
        def __init__(self, app: ASGIApp, in_flight: InFlight) -> None:
            self.app, self.in_flight = app, in_flight

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            self.in_flight.count += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.in_flight.count -= 1

    async def ok() -> Response:
        return Response(b'{"id":"1"}', media_type="application/json")

    def routers() -> list[APIRouter]:
        made = []
        for prefix, paths in [
            ("", [("GET", "/health"), ("GET", "/ready")]),
            ("/referrals", [("POST", ""), ("GET", ""), ("GET", "/worklist")]),
            ("/referrals", [("GET", "/{referral_id}"), ("GET", "/{referral_id}/history")]),
            (
                "/referrals/{referral_id}",
                [("POST", f"/{a}") for a in ("amend", "cancel", "accept", "reject", "redirect")]
                + [("POST", f"/{a}") for a in ("start", "complete", "reroute", "request-info")]
                + [("POST", f"/{a}") for a in ("provide-info", "message", "report-progress")]
                + [("POST", "/fail"), ("POST", "/record-nhs-number")],
            ),
            ("/referrals/{referral_id}/attachments", [("POST", ""), ("GET", "/{a}")]),
        ]:
            router = APIRouter(prefix=prefix)
            for method, path in paths:
                router.add_api_route(path, ok, methods=[method], name=f"{method}{prefix}{path}")
            made.append(router)
        return made

    authenticator = Authenticator(AuthScheme.DEV_HEADERS, "referrals", None)
    larger = {r"/referrals/[^/]+/attachments": 10_000_000}

    def app(before: bool, eager: bool) -> Any:
        made = FastAPI()
        buckets = TokenBuckets(100_000, 100)
        for router in routers():
            include_routes(made, router) if eager else made.include_router(router)
        made.mount("/fhir/R4", FastAPI())
        edge = {"service": "bench", "log_ids": True, "trace": True, "headers": SecureHeaders()}
        if before:
            made.add_middleware(BodySizeLimit, max_bytes=1_000_000, larger=larger)
            made.add_middleware(RateLimit, buckets=buckets)
            made.add_middleware(Authenticate, authenticator=authenticator)
            made.add_middleware(Edge, **edge)
            made.add_middleware(CountInFlight, in_flight=InFlight())
            made.add_middleware(ProblemsAsOperationOutcome, prefix="/fhir/R4")
        else:
            made.add_middleware(
                Gate,
                authenticator=authenticator,
                rate_limit=RateLimiter(buckets),
                body_limit=BodyLimits(1_000_000, larger),
            )
            made.add_middleware(Edge, **edge)
            made.add_middleware(ServiceLayer, in_flight=InFlight(), fhir_prefix="/fhir/R4")
        return made

    identity = [(b"x-organisation", b"RXA01"), (b"x-roles", b"provider")]
    requests = [("POST", "/referrals", b'{"a":1}'), ("GET", "/referrals/r-1", b"")]
    requests += [("POST", f"/referrals/r-1/{a}", b"{}") for a in ("accept", "start", "complete")]
    loop = asyncio.new_event_loop()
    answers: list[Any] = []

    async def send(message: Any) -> None:
        answers.append(message)

    def call(asgi: Any) -> Callable[[], None]:
        def once() -> None:
            for method, path, body in requests:
                headers = [(b"host", b"x"), *identity]
                if body:
                    headers.append((b"content-length", str(len(body)).encode()))

                async def receive(body: bytes = body) -> Any:
                    return {"type": "http.request", "body": body, "more_body": False}

                scope = {"type": "http", "method": method, "path": path, "root_path": ""}
                scope |= {"raw_path": path.encode(), "query_string": b"", "headers": headers}
                scope |= {"http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80)}
                scope |= {"client": ("127.0.0.1", 1)}
                answers.clear()
                loop.run_until_complete(asgi(scope, receive, send))
                assert answers[0]["status"] == 200, (path, answers)

        return once

    for name, before, after in [
        ("six layers / three (routers lazy)", app(True, False), app(False, False)),
        ("routers lazy / routes on the app (six layers)", app(True, False), app(True, True)),
        ("both: six layers, lazy / three, eager", app(True, False), app(False, True)),
    ]:
        call(before)()
        first = [h for h in answers[0]["headers"] if h[0] != b"date"]
        call(after)()
        assert [h for h in answers[0]["headers"] if h[0] != b"date"] == first, "same headers"
        _compare(f"the journey's five requests: {name}", call(before), call(after), args)
    loop.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=2000)
    parts = {
        "render": render,
        "dependencies": dependencies,
        "transactions": transactions,
        "edge": edge,
        "one_write": one_write,
        "native_telemetry": native_telemetry,
        "identity": identity,
        "location": location,
        "layers": layers,
    }
    parser.add_argument("--parts", nargs="*", choices=list(parts), default=list(parts))
    args = parser.parse_args()
    os.environ.setdefault("RX_ENV", "development")
    for name in args.parts:
        parts[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
