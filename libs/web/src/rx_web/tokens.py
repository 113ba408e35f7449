"""Verifying bearer tokens: JWTs signed by the issuer, checked against its JWKS.

The JWKS is fetched with httpx and cached for a TTL. A token signed with a key the cache does
not know (the issuer rotated its key) triggers one refetch, at most every
``min_refresh_seconds``, so a flood of made-up ``kid`` values cannot hammer the issuer. When
the issuer cannot be reached the keys already known keep working.

Checked on every token: the algorithm is on the allow-list and matches the key (no ``none``,
no HS256 made with a public key), the signature, the issuer, this service's audience, and the
expiry and not-before times (with a small leeway for clock skew)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from pydantic import ValidationError
from rx_contracts import Identity

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384"})
"""What an allow-list may contain: public-key algorithms only."""


class TokenError(Exception):
    """The token is missing, malformed or not valid here; ``description`` says which check
    failed, and becomes ``error_description`` in WWW-Authenticate."""

    def __init__(self, description: str, error: str = "invalid_token") -> None:
        super().__init__(description)
        self.description, self.error = description, error


class KeysUnavailable(Exception):
    """The issuer's JWKS cannot be fetched and no key is cached: tokens cannot be checked."""


@dataclass(frozen=True)
class VerifierConfig:
    issuer: str
    audience: str
    jwks_url: str
    algorithms: Sequence[str] = ("EdDSA", "RS256")
    leeway_seconds: float = 30
    jwks_ttl_seconds: float = 300
    min_refresh_seconds: float = 5

    def __post_init__(self) -> None:
        unsafe = sorted(set(self.algorithms) - ASYMMETRIC_ALGORITHMS)
        if unsafe:
            raise ValueError(f"token algorithms {unsafe} are not allowed; use public-key ones")


class Jwks:
    """The issuer's public keys by ``kid``, fetched with httpx and cached."""

    def __init__(
        self,
        url: str,
        ttl_seconds: float,
        min_refresh_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self.ttl, self.min_refresh = url, ttl_seconds, min_refresh_seconds
        self._transport, self._clock = transport, clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self.fetches = 0
        """How many times the JWKS was requested (tests check refetches are bounded)."""

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key ``kid``, refreshing the cache when it is stale or does not know ``kid``."""
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self.ttl
        if kid not in self._keys or stale:
            await self._refresh(force=kid not in self._keys)
        return self._keys.get(kid)

    @property
    def generation(self) -> int | None:
        """Which fetch the keys come from while they are within their TTL; None once stale."""
        if self._fetched_at is None or self._clock() - self._fetched_at >= self.ttl:
            return None
        return self.fetches

    async def _refresh(self, force: bool) -> None:
        async with self._guard():
            now = self._clock()
            if self._fetched_at is not None and now - self._fetched_at < self.ttl and not force:
                return  # another request refreshed while this one waited
            if self._attempted_at is not None and now - self._attempted_at < self.min_refresh:
                return  # refetches are rate-limited; unknown kids until then are refused
            self._attempted_at = now
            self.fetches += 1
            try:
                async with httpx.AsyncClient(transport=self._transport, timeout=5) as client:
                    response = await client.get(self.url)
                    response.raise_for_status()
                    document = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("cannot fetch the JWKS from %s: %s", self.url, exc)
                if not self._keys:
                    raise KeysUnavailable(f"cannot fetch the token keys: {exc}") from exc
                return  # keep the keys we know
            self._keys = _parse_keys(document)
            self._fetched_at = now

    def _guard(self) -> asyncio.Lock:
        # An asyncio.Lock belongs to one event loop; test clients may run the app in several.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock


def _parse_keys(document: Any) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document.get("keys", []) if isinstance(document, dict) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or "kid" not in entry:
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:  # a key type we cannot use: skip it, keep the rest
            log.warning("skipping JWKS key %s: %s", entry.get("kid"), exc)
    return keys


class TokenVerifier:
    """Checks tokens; a token that passed is remembered until it expires or the keys it was
    checked with are refetched or stale, so a system calling many times with one token pays
    for the signature once."""

    CACHE_SIZE = 4096

    def __init__(
        self,
        config: VerifierConfig,
        jwks: Jwks | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.jwks = jwks or Jwks(
            config.jwks_url, config.jwks_ttl_seconds, config.min_refresh_seconds
        )
        self._clock = clock
        self._verified: dict[str, tuple[dict[str, Any], float, int]] = {}

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or :class:`TokenError` naming the check that failed."""
        known = self._verified.get(token)
        generation = self.jwks.generation
        if known is not None and self._clock() < known[1] and known[2] == generation:
            return known[0]
        claims = await self._check(token)
        generation = self.jwks.generation
        if generation is not None:
            if len(self._verified) >= self.CACHE_SIZE:
                self._verified.clear()
            # Good until it expires, with the leeway every check allows.
            until = float(claims["exp"]) + self.config.leeway_seconds
            self._verified[token] = (claims, until, generation)
        return claims

    async def _check(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError("malformed token: not a signed JWT") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.config.algorithms:
            raise TokenError(f"algorithm {alg!r} is not accepted")
        if not isinstance(kid, str) or not kid:
            raise TokenError("the token names no signing key (kid)")
        key = await self.jwks.key(kid)
        if key is None:
            raise TokenError(f"unknown signing key {kid!r}")
        if key.algorithm_name != alg:
            raise TokenError(f"algorithm {alg!r} does not match key {kid!r}")
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"the token has no {exc.claim!r} claim") from exc
        except jwt.PyJWTError as exc:
            reason = next(
                (why for kind, why in _REASONS if isinstance(exc, kind)), f"invalid token: {exc}"
            )
            raise TokenError(reason.format(audience=self.config.audience)) from exc


_REASONS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is not for this service ({audience})"),
    (jwt.InvalidIssuerError, "the token comes from another issuer"),
    (jwt.InvalidSignatureError, "bad signature"),
]
"""What each failed check of jwt.decode tells the caller (WWW-Authenticate)."""


def identity_from_claims(claims: dict[str, Any], practitioner: str | None = None) -> Identity:
    """The caller the issuer vouched for. ``practitioner`` is the person acting, which a
    calling system states per request (``X-Practitioner``). A token issued to a person who
    signed in names its practitioner itself: that one counts, and a different
    X-Practitioner is refused rather than recorded."""
    signed = claims.get("practitioner")
    if signed is not None:
        if practitioner is not None and practitioner != signed:
            raise TokenError(
                "X-Practitioner differs from the practitioner this token was issued to; "
                "leave the header out"
            )
        practitioner = signed
    try:
        return Identity.model_validate(
            {
                "organisation": claims.get("org"),
                "roles": claims.get("roles") or (),
                "provider_type": claims.get("provider_type"),
                "practitioner": practitioner,
                "client_id": claims.get("client_id") or claims.get("sub"),
            }
        )
    except ValidationError as exc:
        fields = ", ".join(str(e["loc"][0]) for e in exc.errors())
        raise TokenError(f"the token's claims do not make an identity ({fields})") from exc
