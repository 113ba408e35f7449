"""Signing keys: a small JSON key file, newest key first. The newest signs; every key in the
file is published in the JWKS, so tokens signed before a rotation stay valid until they expire.

``python -m issuer rotate-key`` adds a key and drops the oldest beyond ``keys_kept``; a running
issuer notices the file changed and signs with the new key from its next token."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: Any
    created_at: str

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK with ``kid``, ``alg`` and ``use``."""
        public = self.private_key.public_key()
        codec = OKPAlgorithm if self.algorithm == "EdDSA" else RSAAlgorithm
        jwk: dict[str, Any] = codec.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


def new_key(algorithm: str) -> SigningKey:
    private: PrivateKeyTypes = (
        ed25519.Ed25519PrivateKey.generate()
        if algorithm == "EdDSA"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    stamp = datetime.now(UTC)
    # The kid says when the key was made, which helps whoever reads a token's header.
    kid = f"{stamp:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    return SigningKey(kid, algorithm, private, stamp.isoformat())


class KeyStore:
    """The key file of one issuer. Reads are cached until the file's mtime changes."""

    def __init__(self, path: Path, algorithm: str = "EdDSA", keep: int = 3) -> None:
        self.path, self.algorithm, self.keep = path, algorithm, keep
        self._stamp: tuple[int, int] | None = None
        self._keys: list[SigningKey] = []

    def keys(self) -> list[SigningKey]:
        """Every published key, newest (the signing key) first; makes the file if missing."""
        if not self.path.exists():
            self._write([new_key(self.algorithm)])
        stat = self.path.stat()
        stamp = (stat.st_ino, stat.st_mtime_ns)  # a rotation replaces the file: new inode
        if stamp != self._stamp:
            self._keys, self._stamp = self._read(), stamp
        return self._keys

    def current(self) -> SigningKey:
        return self.keys()[0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys()]}

    def rotate(self) -> SigningKey:
        """Make a new signing key; keep the previous ones published up to ``keep`` in all."""
        key = new_key(self.algorithm)
        self._write([key, *self.keys()][: self.keep])
        return key

    def _read(self) -> list[SigningKey]:
        entries = json.loads(self.path.read_text())["keys"]
        return [
            SigningKey(
                e["kid"],
                e["alg"],
                serialization.load_pem_private_key(e["private_pem"].encode(), password=None),
                e["created_at"],
            )
            for e in entries
        ]

    def _write(self, keys: list[SigningKey]) -> None:
        entries = [
            {
                "kid": k.kid,
                "alg": k.algorithm,
                "created_at": k.created_at,
                "private_pem": k.private_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
            }
            for k in keys
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Private keys: owner-only, and replaced atomically so a reader never sees half a file.
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"keys": entries}, out, indent=2)
        os.replace(tmp, self.path)
