"""A service's gate (rx_web.gate.Gate) answers as the three middlewares it replaces do, in
the same order: authentication names the caller, the rate limit counts it (429), the body
size limit holds its body (413)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from rx_web.auth import Authenticator, AuthScheme, AuthSettings, install_auth
from rx_web.gate import Gate
from rx_web.identity import IdentityDep
from rx_web.limits import BodyLimits, BodySizeLimit
from rx_web.problems import install_problem_handlers
from rx_web.ratelimit import RateLimit, RateLimiter, TokenBuckets
from rx_web.settings import Environment

DEV = AuthSettings(env=Environment.DEVELOPMENT, auth=AuthScheme.DEV_HEADERS)
GP = {"X-Organisation": "B81001", "X-Roles": "provider"}
TEAM = {"X-Organisation": "RXA01", "X-Roles": "provider"}
LIMIT, BURST = 100, 4


def three_layers(app: FastAPI) -> None:
    app.add_middleware(BodySizeLimit, max_bytes=LIMIT, larger={"/upload": 10 * LIMIT})
    app.add_middleware(RateLimit, buckets=TokenBuckets(0.001, BURST))
    install_auth(app, "test", DEV)


def one_layer(app: FastAPI) -> None:
    app.state.authenticator = Authenticator.from_settings(DEV, "test")
    app.add_middleware(
        Gate,
        authenticator=app.state.authenticator,
        rate_limit=RateLimiter(TokenBuckets(0.001, BURST)),
        body_limit=BodyLimits(LIMIT, {"/upload": 10 * LIMIT}),
    )


def chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 50):
        yield b"x" * 50


def answers(install: Callable[[FastAPI], None]) -> list[Any]:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/health")
    def health() -> str:
        return "ok"

    @app.get("/who")
    def who(identity: IdentityDep) -> str:
        return identity.organisation

    @app.post("/echo")
    @app.post("/upload")
    async def echo(request: Request) -> int:
        return len(await request.body())

    install(app)
    requests: list[tuple[str, str, dict[str, str], Any]] = [
        ("GET", "/who", {}, None),
        ("GET", "/who", {"X-Organisation": "not an ods code!"}, None),
        ("POST", "/echo", GP, b"x" * LIMIT),
        ("POST", "/echo", GP, b"x" * (LIMIT + 1)),
        ("POST", "/echo", TEAM, chunks(2 * LIMIT)),
        ("POST", "/upload", TEAM, chunks(5 * LIMIT)),
        ("POST", "/upload", TEAM, chunks(20 * LIMIT)),
        *[("GET", "/health", {}, None)] * 6,
        ("GET", "/who", GP, None),
        ("GET", "/who", GP, None),
        ("POST", "/echo", GP, b"x" * (LIMIT + 1)),
        ("GET", "/who", TEAM, None),
        ("POST", "/upload", TEAM, chunks(20 * LIMIT)),
        *[("GET", "/who", {}, None)] * 3,
    ]
    with TestClient(app) as client:
        return [
            (
                response.status_code,
                [(k, v) for k, v in response.headers.multi_items() if k != "date"],
                response.text,
            )
            for response in (
                client.request(method, path, headers=headers, content=body)
                for method, path, headers, body in requests
            )
        ]


def test_one_gate_answers_every_request_as_the_three_layers_did() -> None:
    before, after = answers(three_layers), answers(one_layer)
    assert after == before
    statuses = [status for status, _, _ in after]
    assert statuses[:-3] == [401, 401, 200, 413, 413, 200, 413, *[200] * 6, 200, 200, 429, 200, 429]
    assert statuses[-3:] == [401, 401, 429], "callers without an identity counted by address"


@pytest.mark.parametrize("install", [three_layers, one_layer])
def test_a_body_of_undeclared_length_is_counted_as_it_comes(install: Any) -> None:
    app = FastAPI()
    read: list[int] = []

    @app.post("/echo")
    async def echo(request: Request) -> None:
        async for chunk in request.stream():
            read.append(len(chunk))

    install(app)
    with TestClient(app) as client:
        assert client.post("/echo", headers=GP, content=chunks(10 * LIMIT)).status_code == 413
    assert sum(read) <= LIMIT, "refused once past the limit, not after the whole body"
