"""Where notifications may be sent: an https URL whose host resolves only to public addresses.

Checked when a subscription is made or changed, and again before every connection, on the
addresses the name resolves to at that moment (a name can be re-pointed after the check); the
connection then goes to the address that was checked. Plain http, loopback addresses and the
allow-listed private ranges are for development only (``Settings``)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

from .errors import InvalidSubscription

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2000
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True)
class EndpointPolicy:
    allow_loopback: bool = False
    allowed_networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, allow_loopback: bool, networks: list[str]) -> EndpointPolicy:
        return cls(allow_loopback, tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def address_problem(self, address: str) -> str | None:
        """Why a connection to ``address`` is refused, or None if it is allowed."""
        try:
            ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return f"{address!r} is not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        if any(ip in network for network in self.allowed_networks):
            return None
        if ip.is_loopback:
            return None if self.allow_loopback else f"{ip} is a loopback address"
        if ip.is_global and not ip.is_multicast:
            return None
        what = (
            "link-local (cloud metadata lives there)"
            if ip.is_link_local
            else "private"
            if ip.is_private
            else "not a public address"
        )
        return f"{ip} is {what}"

    def check_addresses(self, scheme: str, addresses: list[str]) -> str | None:
        """Why connecting to these resolved addresses is refused (every one must pass, so a
        name cannot smuggle an internal address in beside a public one), or None."""
        if not addresses:
            return "the host name resolves to no address"
        for address in addresses:
            problem = self.address_problem(address)
            if problem:
                return problem
        if scheme == "http" and not all(
            ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses
        ):
            return "plain http is allowed to loopback addresses only"
        return None


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint URL."""

    url: str
    scheme: str
    host: str
    port: int

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def literal_address(self) -> str | None:
        """The host if it is an IP address rather than a name."""
        try:
            return str(ipaddress.ip_address(self.host))
        except ValueError:
            return None


HOST_NAME = re.compile(r"[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*")
"""A host name as the resolver takes it (lower case here; no other characters)."""


def parse_endpoint(url: str, policy: EndpointPolicy, field_name: str = "endpoint") -> Endpoint:
    """Check the URL's form (and its address, if the host is a literal one); raise
    InvalidSubscription naming the rule it breaks."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidSubscription(field_name, "too_long", f"at most {MAX_URL_LENGTH} characters")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidSubscription(field_name, "url", f"not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("https", "http") or not host:
        raise InvalidSubscription(field_name, "https", "must be an https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidSubscription(
            field_name, "no_credentials", "credentials do not belong in the URL; use headers"
        )
    if parts.fragment:
        raise InvalidSubscription(field_name, "no_fragment", "a URL fragment is not sent")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidSubscription(field_name, "url", "spaces and control characters are refused")
    endpoint = Endpoint(url, scheme, host, port or (443 if scheme == "https" else 80))
    if endpoint.literal_address is None and not HOST_NAME.fullmatch(host):
        raise InvalidSubscription(
            field_name,
            "host",
            f"'{host}' is not a host name: dot-separated labels of letters, digits and hyphens",
        )
    loopback_name = host in LOOPBACK_NAMES
    if scheme == "http":
        literal = endpoint.literal_address
        is_loopback = loopback_name or (
            literal is not None and ipaddress.ip_address(literal).is_loopback
        )
        if not (policy.allow_loopback and is_loopback):
            raise InvalidSubscription(
                field_name,
                "https",
                "must be https (plain http only to loopback, in development)",
            )
    if loopback_name and not policy.allow_loopback:
        raise InvalidSubscription(field_name, "address", f"{host} is a loopback address")
    if endpoint.literal_address is not None:
        problem = policy.address_problem(endpoint.literal_address)
        if problem:
            raise InvalidSubscription(field_name, "address", problem)
    return endpoint
