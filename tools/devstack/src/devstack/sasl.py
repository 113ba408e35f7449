"""Broker-side security of the local Kafka broker: SASL/SCRAM for clients, the StandardAuthorizer
denying whatever no ACL allows, and one super user (``admin``) that creates topics, users and
ACLs. Which principal may do what is ``devstack.access``; this module only locks the door.

- Client listener ``SASL_PLAINTEXT``: SCRAM-SHA-512 (the password never crosses the wire). The
  broker talks to itself over it too (inter-broker listener) as ``admin``.
- Controller listener (loopback only, never advertised): SASL/PLAIN with one static user,
  ``controller``, whose password lives only in ``server.properties``. SCRAM cannot protect it,
  because SCRAM users are stored in the very metadata log the controller serves; PLAIN rather
  than PLAINTEXT so that no anonymous connection is ever a super user.
- ``admin`` is created when the log dir is formatted (``--add-scram``), so it exists before the
  broker first accepts a connection; every other user is created through the admin client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rx_config.kafka_auth import SCRAM_SHA_512, KafkaAuth

ADMIN = "admin"
"""The super user: topic creation, SCRAM users and ACLs. No service runs as it."""

CONTROLLER = "controller"
"""The broker's own identity towards its controller (KRaft), on the controller listener."""

CLIENT_LISTENER = "SASL_PLAINTEXT"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"

_SAFE_SECRET = re.compile(r"^[A-Za-z0-9._~-]{12,}$")


@dataclass(frozen=True)
class BrokerSecurity:
    """The two secrets a secured broker is started with (see the module docstring)."""

    admin_password: str = field(repr=False)
    controller_password: str = field(repr=False)

    def __post_init__(self) -> None:
        # They end up inside JAAS strings and a --add-scram spec: quotes, commas or brackets
        # would change the meaning of those, so only URL-safe characters are allowed.
        for name, secret in (
            ("admin", self.admin_password),
            ("controller", self.controller_password),
        ):
            if not _SAFE_SECRET.match(secret):
                raise ValueError(
                    f"the {name} password must be at least 12 characters of A-Z a-z 0-9 . _ ~ -"
                )

    @property
    def admin_auth(self) -> KafkaAuth:
        """How devstack's admin client logs in."""
        return KafkaAuth.sasl(ADMIN, self.admin_password)

    def properties(self, port: int, controller_port: int) -> dict[str, str]:
        """``server.properties`` entries replacing the PLAINTEXT listeners of ``Broker``."""
        listener = CLIENT_LISTENER.lower()
        return {
            "listeners": (
                f"{CLIENT_LISTENER}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
            ),
            "advertised.listeners": f"{CLIENT_LISTENER}://127.0.0.1:{port}",
            "listener.security.protocol.map": (
                f"{CLIENT_LISTENER}:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
            ),
            "inter.broker.listener.name": CLIENT_LISTENER,
            "sasl.enabled.mechanisms": SCRAM_SHA_512,
            "sasl.mechanism.inter.broker.protocol": SCRAM_SHA_512,
            f"listener.name.{listener}.{SCRAM_SHA_512.lower()}.sasl.jaas.config": (
                f'{_SCRAM_LOGIN} required username="{ADMIN}" password="{self.admin_password}";'
            ),
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{_PLAIN_LOGIN} required username="{CONTROLLER}" '
                f'password="{self.controller_password}" '
                f'user_{CONTROLLER}="{self.controller_password}";'
            ),
            "authorizer.class.name": AUTHORIZER,
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN};User:{CONTROLLER}",
        }

    def format_arguments(self) -> list[str]:
        """Extra ``kafka-storage format`` arguments: create ``admin`` with the log dir."""
        return ["--add-scram", f"{SCRAM_SHA_512}=[name={ADMIN},password={self.admin_password}]"]


_SCRAM_RECORD_SECRETS = re.compile(r"\b(salt|storedKey|serverKey)=\[[^\]]*\]")


def redact_format_output(text: str) -> str:
    """``kafka-storage format`` prints the SCRAM records it writes; keep their keys out of
    ``broker.log``."""
    return _SCRAM_RECORD_SECRETS.sub(r"\1=[redacted]", text)
