"""The checkpoint keys: signing each checkpoint (a compact JWS, RFC 7515) and checking the
signatures of the checkpoints read back from the topic, with PyJWT.

The keys live in a JSON file of their own (``AUDIT_CHECKPOINT_KEYS_FILE``, a secret), newest
first: ``{"keys": [{"kid", "alg", "created_at", "private_pem" | "public_pem"}, …]}``. The
newest signs and must hold its private key; every key is published (``GET
/audit/checkpoint-keys``) and trusted, so checkpoints signed before a rotation still verify.
Processes that only verify may be given the published JWK Set itself as their key file.
``python -m audit checkpoint-key rotate`` makes a new signing key and keeps only the public
halves of the older ones. A process notices a changed file from its next checkpoint on.

In development a missing file is made by the first process that signs, its key marked as a
development key; outside development such a key is refused, as the shipped default secrets
are, and a missing file means there is nothing to sign with."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm
from rx_contracts import ChainCheckpointed
from rx_web.settings import DefaultSecretError, Environment

from ..domain.signing import mismatch, statement_bytes

ALGORITHMS = ("EdDSA", "ES256")
"""EdDSA (Ed25519) for new keys; ES256 (P-256) keys are read and published too."""
HEADER_TYPE = "JOSE"  # RFC 7515 §4.1.9: a JWS in compact serialisation

Signer = Callable[[ChainCheckpointed], str]


class CheckpointKeyError(RuntimeError):
    """There is no usable key to sign checkpoints with, or the key file cannot be read."""


class TrustedKey(NamedTuple):
    """A published public key: what a checkpoint's signature is checked with."""

    algorithm: str
    key: Any


@dataclass(frozen=True)
class CheckpointKey:
    kid: str
    algorithm: str
    public_key: Any
    private_key: Any
    """None for a key kept to verify with only."""
    created_at: str
    development: bool = False

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK with ``kid``, ``alg`` and ``use``."""
        codec = OKPAlgorithm if self.algorithm == "EdDSA" else ECAlgorithm
        jwk: dict[str, Any] = codec.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def entry(self, *, private: bool) -> dict[str, Any]:
        """The key as the file keeps it (its private half only if ``private``)."""
        entry: dict[str, Any] = {
            "kid": self.kid,
            "alg": self.algorithm,
            "created_at": self.created_at,
        }
        if self.development:
            entry["development"] = True
        if private and self.private_key is not None:
            entry["private_pem"] = self.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
        else:
            entry["public_pem"] = self.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode()
        return entry


def new_key(*, development: bool = False) -> CheckpointKey:
    """A new Ed25519 signing key; its kid says when it was made."""
    private = ed25519.Ed25519PrivateKey.generate()
    stamp = datetime.now(UTC)
    kid = f"audit-{stamp:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    return CheckpointKey(
        kid, "EdDSA", private.public_key(), private, stamp.isoformat(), development
    )


class CheckpointKeys:
    """The key file of one audit service. Reads are cached until the file changes."""

    def __init__(self, path: Path, environment: Environment) -> None:
        self.path, self.environment = path, environment
        self._stamp: tuple[int, int] | None = None
        self._keys: list[CheckpointKey] = []

    def load(self) -> list[CheckpointKey]:
        """Every key, newest first; none if the file does not exist. DefaultSecretError for a
        development key outside development."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._keys = None, []
            return []
        stamp = (stat.st_ino, stat.st_mtime_ns)  # a rotation replaces the file: new inode
        if stamp != self._stamp:
            keys = _read(self.path)
            self._refuse_development_keys(keys)
            self._keys, self._stamp = keys, stamp
        return self._keys

    def trusted(self) -> dict[str, TrustedKey]:
        """The published keys by kid."""
        return {key.kid: TrustedKey(key.algorithm, key.public_key) for key in self.load()}

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (RFC 7517)."""
        return {"keys": [key.public_jwk() for key in self.load()]}

    def signer(self) -> Signer:
        """What signs checkpoints with the newest key (read again when the file changes).
        In development a missing file is made first; CheckpointKeyError if there is no key
        with its private half to sign with."""
        if self.environment is Environment.DEVELOPMENT and not self.path.exists():
            self._write_new([new_key(development=True)])
        self._signing_key()
        return self.sign

    def sign(self, checkpoint: ChainCheckpointed) -> str:
        """``checkpoint``'s signature: a compact JWS of its statement, naming the key."""
        key = self._signing_key()
        return jwt.PyJWS().encode(
            statement_bytes(checkpoint),
            key.private_key,
            algorithm=key.algorithm,
            headers={"kid": key.kid, "typ": HEADER_TYPE},
        )

    def rotate(self) -> CheckpointKey:
        """Make a new signing key; the older keys stay published with their public halves
        only (outside development, development keys are dropped)."""
        key = new_key(development=self.environment is Environment.DEVELOPMENT)
        try:
            older = _read(self.path)
        except FileNotFoundError:
            older = []
        if self.environment is not Environment.DEVELOPMENT:
            older = [k for k in older if not k.development]
        entries = [key.entry(private=True), *(k.entry(private=False) for k in older)]
        _write(self.path, entries, replace=True)
        return key

    def _signing_key(self) -> CheckpointKey:
        keys = self.load()
        if not keys:
            raise CheckpointKeyError(
                f"no checkpoint signing key: {self.path} does not exist; make one with "
                "`python -m audit checkpoint-key rotate` (docs/operations.md)"
            )
        if keys[0].private_key is None:
            raise CheckpointKeyError(
                f"the newest key in {self.path} ({keys[0].kid}) has no private half: this "
                "file can verify checkpoints, not sign them"
            )
        return keys[0]

    def _write_new(self, keys: list[CheckpointKey]) -> None:
        _write(self.path, [k.entry(private=True) for k in keys], replace=False)

    def _refuse_development_keys(self, keys: list[CheckpointKey]) -> None:
        if self.environment is Environment.DEVELOPMENT:
            return
        made = [key.kid for key in keys if key.development]
        if made:
            raise DefaultSecretError(
                f"RX_ENV={self.environment.value} refuses the development checkpoint keys "
                f"{', '.join(made)} in {self.path}: make your own with "
                "`python -m audit checkpoint-key rotate`"
            )


def trusted_from_jwks(jwks: Mapping[str, Any]) -> dict[str, TrustedKey]:
    """The keys of a JWK Set (such as a copy of ``GET /audit/checkpoint-keys`` kept
    elsewhere) by kid."""
    found = {}
    for jwk in jwt.PyJWKSet.from_dict(dict(jwks)).keys:
        if jwk.key_id and jwk.algorithm_name in ALGORITHMS:
            found[jwk.key_id] = TrustedKey(jwk.algorithm_name, jwk.key)
    return found


def check(
    checkpoint: ChainCheckpointed, trusted: Mapping[str, TrustedKey]
) -> tuple[str | None, str | None]:
    """(what is wrong with ``checkpoint``'s signature or None, the kid it names)."""
    token = checkpoint.signature
    if not token:
        return "it has no signature", None
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        return "its signature is not a JWS", None
    if not isinstance(kid, str):
        return "its signature names no key (kid)", None
    key = trusted.get(kid)
    if key is None:
        return f"it is signed with a key that is not published (kid {kid!r})", kid
    try:
        signed = jwt.PyJWS().decode_complete(token, key.key, algorithms=[key.algorithm])
        statement = json.loads(signed["payload"])
    except (jwt.InvalidTokenError, ValueError):
        return "its signature does not verify with the published key", kid
    return mismatch(statement, checkpoint), kid


def _read(path: Path) -> list[CheckpointKey]:
    try:
        entries = json.loads(path.read_text())["keys"]
        return [_key(entry) for entry in entries]
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointKeyError(f"cannot read the checkpoint keys in {path}: {exc}") from exc


def _key(entry: dict[str, Any]) -> CheckpointKey:
    algorithm = entry["alg"]
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"key {entry.get('kid')!r}: algorithm {algorithm!r} is not one of {ALGORITHMS}"
        )
    private: Any = None
    if "kty" in entry:  # a JWK, as GET /audit/checkpoint-keys publishes it
        public = jwt.PyJWK(entry, algorithm).key
    elif "private_pem" in entry:
        private = serialization.load_pem_private_key(entry["private_pem"].encode(), password=None)
        public = private.public_key()
    else:
        public = serialization.load_pem_public_key(entry["public_pem"].encode())
    if not (
        isinstance(public, ed25519.Ed25519PublicKey)
        if algorithm == "EdDSA"
        else isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    ):
        raise ValueError(f"key {entry['kid']!r} is not an {algorithm} key")
    return CheckpointKey(
        str(entry["kid"]),
        algorithm,
        public,
        private,
        str(entry.get("created_at", "")),
        bool(entry.get("development", False)),
    )


def _write(path: Path, entries: list[dict[str, Any]], *, replace: bool) -> None:
    """Write the key file owner-only and whole: a reader never sees half a file, and without
    ``replace`` a file another process made first is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"keys": entries}, out, indent=2)
    try:
        if replace:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
