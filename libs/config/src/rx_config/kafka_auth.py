"""How a Kafka client proves who it is: the one place that turns the shared ``KAFKA_*``
security settings into kafka-python keyword arguments.

The default is PLAINTEXT without credentials, so a broker without authentication (the test
session's, or one of your own) keeps working unchanged. A secured broker is reached with::

    KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT   # or SASL_SSL
    KAFKA_SASL_MECHANISM=SCRAM-SHA-512       # or SCRAM-SHA-256, PLAIN
    KAFKA_SASL_USERNAME=routing
    KAFKA_SASL_PASSWORD=…
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

PLAINTEXT = "PLAINTEXT"
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
SCRAM_SHA_512 = "SCRAM-SHA-512"
MECHANISMS = (SCRAM_SHA_512, "SCRAM-SHA-256", "PLAIN")

ENV_PROTOCOL = "KAFKA_SECURITY_PROTOCOL"
ENV_MECHANISM = "KAFKA_SASL_MECHANISM"
ENV_USERNAME = "KAFKA_SASL_USERNAME"
ENV_PASSWORD = "KAFKA_SASL_PASSWORD"

WELL_KNOWN_PASSWORDS = frozenset({"", "admin", "changeme", "kafka", "password", "secret"})
"""Passwords that are never acceptable outside development (with ``<user>-dev`` defaults)."""


class KafkaAuthError(ValueError):
    """The security settings contradict each other or are incomplete; the message says how."""


@dataclass(frozen=True)
class KafkaAuth:
    """A client's security settings. ``KafkaAuth()`` is PLAINTEXT without credentials."""

    security_protocol: str = PLAINTEXT
    sasl_mechanism: str = SCRAM_SHA_512
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        protocol = self.security_protocol
        if protocol != PLAINTEXT and protocol not in SASL_PROTOCOLS:
            raise KafkaAuthError(
                f"{ENV_PROTOCOL}={protocol!r} is not supported; use {PLAINTEXT} or one of "
                f"{', '.join(SASL_PROTOCOLS)}"
            )
        if not self.uses_sasl:
            return
        if self.sasl_mechanism not in MECHANISMS:
            raise KafkaAuthError(
                f"{ENV_MECHANISM}={self.sasl_mechanism!r} is not supported; use one of "
                f"{', '.join(MECHANISMS)}"
            )
        if not self.username or not self.password:
            raise KafkaAuthError(
                f"{ENV_PROTOCOL}={protocol} needs {ENV_USERNAME} and {ENV_PASSWORD}"
            )

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in SASL_PROTOCOLS

    @classmethod
    def sasl(cls, username: str, password: str, mechanism: str = SCRAM_SHA_512) -> KafkaAuth:
        """SASL over plaintext TCP as ``username`` (what the local broker offers)."""
        return cls("SASL_PLAINTEXT", mechanism, username, password)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaAuth:
        """Read the shared ``KAFKA_*`` security variables (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        return cls(
            security_protocol=env.get(ENV_PROTOCOL) or PLAINTEXT,
            sasl_mechanism=env.get(ENV_MECHANISM) or SCRAM_SHA_512,
            username=env.get(ENV_USERNAME) or None,
            password=env.get(ENV_PASSWORD) or None,
        )

    def client_config(self) -> dict[str, object]:
        """Keyword arguments for any kafka-python client (producer, consumer, admin)."""
        if not self.uses_sasl:
            return {}
        return {
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }

    def environment(self) -> dict[str, str]:
        """The variables that make a child process's ``from_env`` return these settings."""
        if not self.uses_sasl:
            return {ENV_PROTOCOL: self.security_protocol}
        assert self.username is not None and self.password is not None  # __post_init__
        return {
            ENV_PROTOCOL: self.security_protocol,
            ENV_MECHANISM: self.sasl_mechanism,
            ENV_USERNAME: self.username,
            ENV_PASSWORD: self.password,
        }

    def has_default_password(self) -> bool:
        """True for a password anyone could guess: a well-known one or ``<user>-dev`` (the
        docker-compose defaults), which must never reach a shared environment."""
        if not self.uses_sasl:
            return False
        password = (self.password or "").strip().lower()
        user = (self.username or "").lower()
        return password in WELL_KNOWN_PASSWORDS or password in (user, f"{user}-dev")
