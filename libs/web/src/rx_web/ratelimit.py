"""Per-client rate limits: a token bucket per caller, answering 429 problem+json with
Retry-After once a caller has used its burst and is sending faster than the sustained rate.

The caller is the authenticated client (its token's client id; the organisation under the
development scheme); requests without a valid identity are counted per remote address, so bad
tokens cannot use up another client's allowance.

The buckets live in each API process's memory: no shared store, no database round trip per
request, and a database outage cannot turn into refused requests. With N processes behind a
load balancer (or N uvicorn workers), ``RX_RATE_LIMIT_PROCESSES=N`` gives each process 1/N of
the rate and burst, so a client never gets more than the configured limit across all of them;
when the balancer spreads a client's requests unevenly it gets somewhat less. Left at 1 with N
processes, a client may reach N times the limit."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rx_contracts import Identity
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import STATE_KEY
from .problems import send_problem

EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Probes from orchestrators, load balancers and Prometheus are never limited."""


class RateLimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RX_RATE_LIMIT_", extra="ignore")

    per_second: float = Field(default=20, ge=0, description="Sustained rate per client; 0: off.")
    burst: int = Field(default=100, ge=1, description="Requests a client may send at once.")
    processes: int = Field(
        default=1,
        ge=1,
        description="API processes sharing the limit; each enforces 1/processes of it.",
    )

    def buckets(self) -> TokenBuckets:
        """This process's share of the limit (see the module docstring)."""
        return TokenBuckets(self.per_second / self.processes, max(self.burst / self.processes, 1))


class TokenBuckets:
    """One bucket per key, refilled at ``rate`` per second up to ``burst``. The least recently
    used keys are forgotten beyond ``max_keys``, so addresses cannot grow memory forever."""

    def __init__(
        self,
        rate: float,
        burst: float,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_keys, self.clock = rate, burst, max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """Spend one token for ``key``: 0 if allowed, else seconds until one is available."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


def client_key(scope: Scope) -> str:
    """Who to count a request against (see the module docstring)."""
    outcome = scope.get("state", {}).get(STATE_KEY)
    if isinstance(outcome, Identity):
        return f"client:{outcome.client_id}" if outcome.client_id else f"org:{outcome.organisation}"
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


class RateLimiter:
    """The per-client limit as a check on a request (:class:`RateLimit`, :class:`rx_web.gate.Gate`)."""

    def __init__(self, buckets: TokenBuckets, processes: int = 1) -> None:
        self.buckets, self.processes = buckets, processes

    async def admits(self, scope: Scope, send: Send) -> bool:
        """Whether the HTTP request ``scope`` may go on; if not, its 429 has been sent."""
        if scope.get("path") in EXEMPT_PATHS:
            return True
        wait = self.buckets.take(client_key(scope))
        if not wait:
            return True
        retry_after = max(1, math.ceil(wait))
        share = self.processes  # the client's whole limit, as configured
        detail = (
            f"over {self.buckets.rate * share:g} requests/s "
            f"(burst {round(self.buckets.burst * share)}); "
            f"retry after {retry_after} s"
        )
        await send_problem(
            send,
            429,
            "Too many requests",
            detail,
            scope.get("path", ""),
            {"Retry-After": str(retry_after)},
        )
        return False


class RateLimit:
    """ASGI middleware; runs after :class:`rx_web.auth.Authenticate` has named the caller."""

    def __init__(self, app: ASGIApp, buckets: TokenBuckets, processes: int = 1) -> None:
        self.app, self.limiter = app, RateLimiter(buckets, processes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or await self.limiter.admits(scope, send):
            await self.app(scope, receive, send)
