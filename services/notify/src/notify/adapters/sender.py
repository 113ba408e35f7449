"""Sending one notification over HTTP(S), safely.

Before each connection the endpoint's host name is resolved and every address checked against
the endpoint policy (no private, link-local, loopback or metadata addresses outside the
development allow-list); the request then goes to the checked address itself — the URL carries
the IP, while the ``Host`` header and TLS (SNI and certificate check) keep the name — so a name
cannot be re-pointed between the check and the connection. Redirects are not followed. The
answer's status code is all that is read: bodies are never read, kept or logged. Time is
bounded: connect, each read, and the whole exchange."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ..domain.endpoint import Endpoint, EndpointPolicy

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], list[str]]
"""Host name and port → the addresses it resolves to now (blocking; tests pass a stub)."""


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for ``host`` (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[str] = []
    for _family, _type, _proto, _name, address in infos:
        if address[0] not in found:
            found.append(str(address[0]))
    return found


def resolve(endpoint: Endpoint, resolver: Resolver) -> list[str]:
    """The addresses to check for ``endpoint``: the literal one, or what the name resolves to."""
    literal = endpoint.literal_address
    if literal is not None:
        return [literal]
    return resolver(endpoint.host, endpoint.port)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    """A status code or an error kind, fit for logs and the console: never the answer's body."""


class Sender:
    """One per delivery worker. Keeps a few connections per (host, address) for reuse."""

    def __init__(
        self,
        policy: EndpointPolicy,
        resolver: Resolver = system_resolver,
        connect_timeout: float = 5.0,
        max_clients: int = 256,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.connect_timeout = connect_timeout
        self.max_clients = max_clients
        self._clients: OrderedDict[tuple[str, str, int], httpx.AsyncClient] = OrderedDict()

    async def send(
        self, endpoint: Endpoint, body: bytes, headers: dict[str, str], timeout: float
    ) -> Outcome:
        """POST ``body`` to the endpoint; ``ok`` for a 2xx answer within ``timeout``."""
        try:
            literal = endpoint.literal_address
            addresses = (
                [literal]
                if literal is not None
                else await asyncio.to_thread(resolve, endpoint, self.resolver)
            )
        except OSError as exc:
            return Outcome(False, error=f"cannot resolve {endpoint.host}: {exc.strerror or exc}")
        problem = self.policy.check_addresses(endpoint.scheme, addresses)
        if problem:
            return Outcome(False, error=f"address refused: {problem}")
        address = addresses[0]
        client = self._client(endpoint, address)
        url = httpx.URL(endpoint.url).copy_with(host=address)
        host_header = (
            endpoint.host if endpoint.port in (80, 443) else f"{endpoint.host}:{endpoint.port}"
        )
        extensions = {"sni_hostname": endpoint.host} if endpoint.scheme == "https" else {}
        try:
            async with asyncio.timeout(timeout + self.connect_timeout + 1):
                async with client.stream(
                    "POST",
                    url,
                    content=body,
                    headers={**headers, "Host": host_header},
                    extensions=extensions,
                    timeout=httpx.Timeout(timeout, connect=self.connect_timeout),
                ) as response:
                    status = response.status_code
                    await _discard(response)
        except TimeoutError:
            return Outcome(False, error="timed out")
        except httpx.TimeoutException as exc:
            return Outcome(False, error=f"timed out ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"{type(exc).__name__}")
        except OSError as exc:
            return Outcome(False, error=f"{type(exc).__name__}")
        if 200 <= status < 300:
            return Outcome(True, status)
        return Outcome(False, status, f"HTTP {status}")

    def _client(self, endpoint: Endpoint, address: str) -> httpx.AsyncClient:
        key = (endpoint.host, address, endpoint.port)
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxies from the environment: the address is the checked one
            # One origin may serve many subscriptions (a vendor hosting many organisations'
            # endpoints), each with one request in flight.
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )
        self._clients[key] = client
        while len(self._clients) > self.max_clients:
            _, oldest = self._clients.popitem(last=False)
            task = asyncio.ensure_future(oldest.aclose())
            task.add_done_callback(lambda _t: None)
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients.clear()


MAX_DISCARDED_BYTES = 64 * 1024


async def _discard(response: httpx.Response) -> None:
    """Read a little of the answer and throw it away, so the connection can be reused; a
    longer answer is cut off (the connection is then closed). Never kept, never logged."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read > MAX_DISCARDED_BYTES:
            break
